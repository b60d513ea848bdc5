package tiktok_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestSecretsNeverLeak plants a canary client secret, drives every error
// path, and checks that no error, log line, audit entry, JSON or printed
// form holds a secret or token.
func TestSecretsNeverLeak(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"profile", "video.read"})
		tok, err := e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		secrets := []string{clientSecret, tok.AccessToken, "act.", "rft."}
		var texts []string
		add := func(err error) {
			if err != nil {
				texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
			}
		}
		c := e.client(conn)

		// OAuth failures: bad code, refresh and revoke faults.
		flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"profile"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		cb, err := e.srv.Consent(authURL, openID, tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		q := callbackQuery(t, cb)
		q.Set("code", "act.bogus-code")
		_, err = flow.Complete(e.ctx, q)
		require.Error(t, err)
		add(err)

		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UserInfoPath, Status: http.StatusInternalServerError, Count: 10})
		_, _, err = c.User.Info(e.ctx, tiktok.UserInfoOptions{})
		add(err)
		e.srv.ClearFaults()
		_, _, err = c.User.Info(e.ctx, tiktok.UserInfoOptions{Fields: []string{"follower_count"}})
		add(err)

		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusBadGateway})
		_, err = e.store.Disconnect(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		_, err = e.store.Token(e.ctx, conn.ID, e.prov)
		add(err)

		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		js, err := json.Marshal(conn)
		require.NoError(t, err)
		texts = append(texts, string(js), fmt.Sprintf("%+v", conn), fmt.Sprintf("%#v", got))

		log, err := tenancy.NewAuditLog(db.DB)
		require.NoError(t, err)
		entries, err := log.List(e.ctx, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		for _, en := range entries {
			texts = append(texts, fmt.Sprintf("%+v", en))
		}
		var lastErrors []string
		require.NoError(t, tenancy.RunInTx(e.ctx, db.DB, nil, func(ctx contextT, tx bunTx) error {
			return tx.NewRaw("SELECT last_error FROM socialcrm_social_revocations WHERE tenant_id = ?", mustTenant(ctx)).Scan(ctx, &lastErrors)
		}))
		require.NotEmpty(t, lastErrors)
		texts = append(texts, lastErrors...)
		texts = append(texts, e.logs.String())
		require.NotEmpty(t, e.logs.String(), "the revoke failure was logged")

		for _, s := range texts {
			testkit.RequireNoSecret(t, s, secrets...)
		}
	})
}
