package crm

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	imigrations "github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestIngestPackPlaces: the packed value of Ingest's statement holds the
// messages' sealed bytes first, where each message's place and lengths
// name them, and then every array literal at the place the places give:
// the literal pgArray writes for the column, a conversation to open with
// its id and sealed thread id in hex, one known to exist with NULLs.
func TestIngestPackPlaces(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 1_000, time.UTC)
	opened := &batchThread{key: ConversationKey{Channel: ChannelMessenger, AccountID: `page "1"`, ThreadID: "a"}, index: "idx-a", n: 1, maxSent: at}
	known := &batchThread{key: ConversationKey{Channel: ChannelInstagram, AccountID: `page\2`, ThreadID: "b"}, index: "idx-b", n: 2, read: at}
	ths := []*batchThread{opened, known}
	sealed := func(s string) vault.Sealed {
		t.Helper()
		v, err := vault.ParseSealed(append(append([]byte{1}, bytes.Repeat([]byte{0}, 32)...), s...))
		require.NoError(t, err)
		return v
	}
	opening := []*Conversation{{ThreadSealed: sealed("\xde\xad")}, nil}
	opening[0].ID = "conv-1"
	ms := []batchMessage{
		{Message: Message{Direction: Inbound, ExternalID: "m.1", Text: "x", SentAt: at, Status: StatusDelivered,
			TextSealed: sealed("first-text")}, th: opened},
		{Message: Message{Direction: Outbound, Text: "y", SentAt: at.Add(time.Second), Status: StatusPending,
			TextSealed: sealed("second"), AttachmentsSealed: sealed("att")}, th: known},
	}
	ms[0].ID, ms[1].ID = "msg-1", "msg-2"
	places, packed := ingestPack(ths, opening, ms)
	nums := strings.Split(strings.Trim(places, "{}"), ",")
	require.Len(t, nums, 2*ingestArrays)
	literal := func(i int) string {
		start, err := strconv.Atoi(nums[2*i])
		require.NoError(t, err)
		n, err := strconv.Atoi(nums[2*i+1])
		require.NoError(t, err)
		return string(packed[start-1 : start-1+n])
	}
	want := func(write func(a *pgArray)) string {
		var a pgArray
		write(&a)
		return a.String()
	}
	first, second, att := sealedBytes(ms[0].TextSealed), sealedBytes(ms[1].TextSealed), sealedBytes(ms[1].AttachmentsSealed)
	require.Equal(t, string(first)+string(second)+string(att), string(packed[:len(first)+len(second)+len(att)]))
	for i, w := range []string{
		`{"messenger","instagram"}`,
		want(func(a *pgArray) { a.text(`page "1"`); a.text(`page\2`) }),
		`{"idx-a","idx-b"}`,
		`{"conv-1",NULL}`,
		"{" + fmt.Sprintf("%x", sealedBytes(opening[0].ThreadSealed)) + ",NULL}",
		want(func(a *pgArray) { a.time(at); a.null() }),
		`{NULL,NULL}`,
		want(func(a *pgArray) { a.null(); a.time(at) }),
		`{1,2}`,
		`{"msg-1","msg-2"}`,
		`{"in","out"}`,
		`{"m.1",NULL}`,
		want(func(a *pgArray) { a.time(at); a.time(at.Add(time.Second)) }),
		`{"delivered","pending"}`,
		fmt.Sprintf("{1,%d}", 1+len(first)),
		fmt.Sprintf("{%d,%d}", len(first), len(second)),
		fmt.Sprintf("{NULL,%d}", len(att)),
	} {
		require.Equal(t, w, literal(i), "literal %d", i)
	}
}

// TestIngestLookupsUseTheKeyOnTheGenericPlan: the array literals cut
// from the packed value carry the database's default collation, so the
// generic plan of Ingest's statement (the one the server runs once it has
// planned it a few times) finds each conversation through the unique key
// on all its columns. Text read by convert_from has the collation of the
// encoding's name ("C"); compared with the tables' columns, it left the
// planner only the tenant's part of an index: every look-up then read all
// of the tenant's conversations (2,880 buffers for 100 look-ups among 400
// conversations, and the webhook benchmark's ratio was 3.8). The plan is
// asked for between indexes (no sequential or bitmap scans), with the
// tenant's 300 conversations analyzed.
func TestIngestLookupsUseTheKeyOnTheGenericPlan(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
	dbtest.GrantApp(t, db)
	v := testVault(t, db)
	s, err := New(db.DB, v)
	require.NoError(t, err)
	tid := tenancy.NewID()
	tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
	var b Batch
	for i := range 300 {
		b.Messages = append(b.Messages, NewMessage{Direction: Inbound, ExternalID: fmt.Sprintf("mid.%d", i), Text: "hi",
			Conversation: ConversationKey{Channel: ChannelMessenger, AccountID: "page", ThreadID: fmt.Sprintf("psid-%d", i)},
			SentAt:       time.Date(2026, 11, 23, 9, 0, i, 0, time.UTC)})
	}
	_, err = s.Conversations().Ingest(tctx, b)
	require.NoError(t, err)

	text, err := ingestTexts.text(db.DB, db.DB.QueryGen(), bun.Safe("TRUE"), tid)
	require.NoError(t, err)
	conn, err := db.Admin(t).Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	for _, q := range []string{"ANALYZE socialcrm_crm_conversations", "SET enable_seqscan = off", "SET enable_bitmapscan = off",
		"SET plan_cache_mode = force_generic_plan",
		"PREPARE ingest_plan AS " + text} {
		_, err := conn.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	var lines []string
	require.NoError(t, conn.NewRaw(`EXPLAIN EXECUTE ingest_plan('{1,2}', '2026-11-23 09:00:00+00', '\x00')`).Scan(ctx, &lines))
	for _, q := range []string{"DEALLOCATE ingest_plan", "RESET ALL"} {
		_, err := conn.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	plan := strings.Join(lines, "\n")
	var lookup bytes.Buffer
	for i, l := range lines {
		if strings.Contains(l, "Index Scan using socialcrm_crm_conversations_key") && i+1 < len(lines) {
			lookup.WriteString(lines[i+1])
		}
	}
	require.Contains(t, lookup.String(), "thread_index =",
		"the look-up of a conversation uses no index on its thread:\n%s", plan)
}
