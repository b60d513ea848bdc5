package crm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestS16ClearAttachmentKeepsNoContentDigest: an unkeyed digest of a
// file's bytes would let anyone holding a copy of the file confirm against
// a backup that the tenant held it. After Attach, no column of the
// attachment's row — nor its JSON — holds the SHA-256 of the bytes (hex
// or base64), the table has no sha256 column, and the bytes still open
// intact.
func TestS16ClearAttachmentKeepsNoContentDigest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, _ := storageEnv(t, db, 1<<20)
		ct, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada"})
		require.NoError(t, err)
		body := []byte("zq confidential contract of Ada, signed")
		sum := sha256.Sum256(body)
		att, err := e.store.Attachments().Attach(e.A, crm.AttachmentInput{OwnerKind: "contact", OwnerID: ct.ID,
			FileName: "contract.pdf", ContentType: "application/pdf"}, bytes.NewReader(body))
		require.NoError(t, err)

		var rows []map[string]any
		require.NoError(t, db.Admin(t).NewRaw("SELECT * FROM "+crm.TableAttachments+" WHERE id = ?", att.ID).Scan(e.A, &rows))
		require.Len(t, rows, 1)
		_, has := rows[0]["sha256"]
		require.False(t, has, "the sha256 column is gone")
		js, err := json.Marshal(att)
		require.NoError(t, err)
		all := string(js) + fmt.Sprint(rows[0])
		for col, v := range rows[0] {
			if b, ok := v.([]byte); ok {
				all += col + string(b) + hex.EncodeToString(b)
			}
		}
		for _, digest := range []string{hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:])} {
			require.False(t, strings.Contains(strings.ToLower(all), strings.ToLower(digest)), "the content digest is stored")
		}

		_, rc, err := e.store.Attachments().Open(e.A, att.ID)
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		require.Equal(t, body, got)
	}, setup)
}
