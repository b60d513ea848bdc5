package tiktok_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// deadlineProvider records the deadline of the context each refresh is
// sent with.
type deadlineProvider struct {
	*tiktok.Provider
	mu  sync.Mutex
	got []time.Time
}

func (p *deadlineProvider) Refresh(ctx context.Context, rt vault.Secret) (*social.Grant, error) {
	dl, _ := ctx.Deadline()
	p.mu.Lock()
	p.got = append(p.got, dl)
	p.mu.Unlock()
	return p.Provider.Refresh(ctx, rt)
}

// saveDeadlines records the deadline of each statement that saves tokens.
type saveDeadlines struct {
	mu  sync.Mutex
	got []time.Time
}

func (h *saveDeadlines) BeforeQuery(ctx context.Context, ev *bun.QueryEvent) context.Context {
	if strings.HasPrefix(ev.Query, "UPDATE") && strings.Contains(ev.Query, "token_version") {
		dl, _ := ctx.Deadline()
		h.mu.Lock()
		h.got = append(h.got, dl)
		h.mu.Unlock()
	}
	return ctx
}

func (*saveDeadlines) AfterQuery(context.Context, *bun.QueryEvent) {}

// TestRefreshSaveOutlivesThePlatformDeadline: the refresh and the save of
// its tokens ran under one deadline, so an answer the platform sent just
// before it left no time to store the rotated refresh token, and the token
// was lost. The save now has RefreshTimeout of its own after the latest
// moment the platform's answer is awaited.
func TestRefreshSaveOutlivesThePlatformDeadline(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithRotation(tiktoktest.RotateSingleUse))
		conn := e.connect([]string{"video.read"})
		hook := &saveDeadlines{}
		db.AddQueryHook(hook)
		p := &deadlineProvider{Provider: e.prov}
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		_, err := e.store.Token(e.ctx, conn.ID, p)
		require.NoError(t, err)
		require.Len(t, p.got, 1)
		require.Len(t, hook.got, 1)
		require.False(t, p.got[0].IsZero(), "the platform's answer is awaited for a bounded time")
		require.False(t, hook.got[0].IsZero(), "the save is bounded too")
		require.GreaterOrEqual(t, hook.got[0].Sub(p.got[0]), social.RefreshTimeout,
			"the save has RefreshTimeout of its own after the platform's deadline")
		require.LessOrEqual(t, time.Until(p.got[0]), social.RefreshTimeout)
	})
}
