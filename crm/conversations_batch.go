package crm

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// batchRows bounds the rows of one multi-row statement of Ingest on
// SQLite.
const batchRows = 500

// Watermarks are the latest delivery and read watermarks of one
// conversation received in a batch (zero: none of that kind).
type Watermarks struct {
	Conversation    ConversationKey
	Delivered, Read time.Time
}

// Batch is what Ingest stores at once: messages of any number of
// conversations and the delivery and read watermarks received with them,
// as a webhook delivery brings them.
type Batch struct {
	Messages   []NewMessage
	Watermarks []Watermarks
	// Require, when set, is a condition (an SQL boolean expression, such
	// as social.Store.Routed builds) that must hold for anything of the
	// batch to be stored: it is evaluated in the statement that stores
	// the batch on PostgreSQL, in its transaction on SQLite, and when it
	// does not hold nothing is stored and BatchResult.Unmet is set. It
	// lets the caller check what it decided the batch on (which tenant
	// the events belong to) in the round trip of the write.
	Require schema.QueryAppender
}

// BatchResult is what Ingest did with a Batch.
type BatchResult struct {
	// Rejected holds, at the index of each message crm refused, its
	// *ValidationError (matching ErrInvalid); nil for a message stored or
	// already stored. It has one element per message.
	Rejected []error
	// RejectedWatermarks is Rejected for the watermarks (an invalid
	// conversation key).
	RejectedWatermarks []error
	// Stored counts the messages stored by this call: messages already
	// recorded (the same ExternalID in the same conversation) and
	// repetitions within the batch are not counted.
	Stored int64
	// Marked counts the outbound messages stored before the batch whose
	// status the batch's watermarks moved forward. A message of the batch
	// itself gets its status as it is stored and is not counted.
	Marked int64
	// Unmet reports that Batch.Require did not hold: nothing was stored.
	Unmet bool
}

// Ingest stores a batch of messages and watermarks as Record,
// MarkDelivered and MarkRead would one by one, in one atomic step whose
// cost does not grow with the number of conversations in statements:
// conversations are opened when missing, each message is stored once per
// ExternalID and conversation (so a repeated webhook delivery stores
// nothing twice), each conversation's LastMessageAt moves forward to its
// latest message (a conversation opened by the batch starts there), and
// the latest delivery and read watermark of each
// conversation is applied to its outbound messages — those stored before
// and those of the batch alike. Watermarks of conversations that neither
// exist nor get a message in the batch are ignored.
//
// A message or watermark crm refuses is not stored: the result's Rejected
// and RejectedWatermarks hold its *ValidationError at its index, and the
// rest of the batch is stored all the same. An error is for a failure of
// the database, and then nothing of the batch is stored.
//
// On PostgreSQL the whole batch is one statement, whatever its size: its
// rows travel as array literals packed with the messages' sealed bytes
// into one bytea value that the statement cuts apart (TestIngestPackPlaces),
// bound as the statement's parameters on a handle
// of socialcrm.OpenDB, so the statement's text holds none of them and is
// the same for every batch of a tenant (and, with Require, of the
// condition's values; TestConversationIngestRowsTravelApart): the tenancy
// Guard checks it from its cache of statement shapes, and the connection
// prepares it once. On a PostgreSQL handle of another driver the arrays
// are written into the text. It runs in one round trip with
// the tenant setting, as an implicit transaction of its own — or in the
// caller's transaction with Using. It locks the batch's existing
// conversations against removal (FOR KEY SHARE, which concurrent batches
// share) and writes a conversation's row only when the batch opens it,
// moves one of its watermarks, or brings it a message of a later hour
// (of UTC) than its stored last message time: within the hour the row is
// not written, and reads give the exact LastMessageAt from the messages
// (TestConversationLastMessageWithinTheHour). The rows it writes, and then
// the messages, are written in key order, so concurrent batches that
// share conversations never deadlock on them. A conversation the batch
// has only watermarks for that is removed before the statement locks it
// is ignored. On SQLite, where a statement costs no round trip, it is a
// few statements in one transaction, and every message writes its
// conversation's time.
//
// With b.Require set, nothing of the batch is stored unless the condition
// holds, checked in that statement (on SQLite, in that transaction); the
// result's Unmet says it did not.
func (r *Conversations) Ingest(ctx context.Context, b Batch) (BatchResult, error) {
	res := BatchResult{Rejected: make([]error, len(b.Messages)), RejectedWatermarks: make([]error, len(b.Watermarks))}
	threads := make(map[ConversationKey]*batchThread, len(b.Messages)+len(b.Watermarks))
	list := make([]*batchThread, 0, len(b.Messages)+len(b.Watermarks))
	// One allocation for every conversation of the batch: never more
	// than its messages and watermarks, so the slab never moves.
	slab := make([]batchThread, 0, len(b.Messages)+len(b.Watermarks))
	thread := func(k ConversationKey) *batchThread {
		th := threads[k]
		if th == nil {
			slab = append(slab, batchThread{key: k})
			th = &slab[len(slab)-1]
			threads[k] = th
			list = append(list, th)
		}
		return th
	}
	type pending struct {
		in NewMessage
		th *batchThread
	}
	msgs := make([]pending, 0, len(b.Messages))
	for i, in := range b.Messages {
		if !plainMessage(&in) {
			if err := r.s.check(kindMessage, in); err != nil {
				res.Rejected[i] = err
				continue
			}
		}
		if in.Text == "" && len(in.Attachments) == 0 {
			res.Rejected[i] = invalid(kindMessage, "text", "required_without", "is required without attachments")
			continue
		}
		th := thread(in.Conversation)
		th.maxSent = later(th.maxSent, in.SentAt.UTC().Truncate(time.Microsecond))
		msgs = append(msgs, pending{in: in, th: th})
	}
	for i, w := range b.Watermarks {
		if !plainKey(&w.Conversation) {
			if err := r.s.check(kindConversation, w.Conversation); err != nil {
				res.RejectedWatermarks[i] = err
				continue
			}
		}
		if err := checkWatermarks(&w); err != nil { // validate_values.go
			res.RejectedWatermarks[i] = err
			continue
		}
		if w.Delivered.IsZero() && w.Read.IsZero() {
			continue
		}
		th := thread(w.Conversation)
		th.delivered = later(th.delivered, w.Delivered.UTC().Truncate(time.Microsecond))
		th.read = later(th.read, w.Read.UTC().Truncate(time.Microsecond))
	}
	if len(list) == 0 {
		return res, nil
	}
	// Conversations are opened and updated in key order, so concurrent
	// batches wait for each other in one order, never deadlock.
	slices.SortFunc(list, func(a, b *batchThread) int { return compareKeys(a.key, b.key) })
	if err := r.ensureKeys(ctx); err != nil {
		return BatchResult{}, err
	}
	for i, th := range list {
		th.n = i + 1
		var err error
		if th.index, err = r.threadIndex(ctx, th.key.ThreadID); err != nil {
			return BatchResult{}, err
		}
	}
	now := r.s.clock()
	// Each message is written in its row in place (rows never grows):
	// sealing takes pointers to its fields, which made a Message on the
	// heap per message, and a copy of it, when it was a variable.
	rows := make([]batchMessage, len(msgs))
	for i, p := range msgs {
		rows[i] = batchMessage{Message: Message{Direction: p.in.Direction, ExternalID: p.in.ExternalID, Text: p.in.Text,
			Attachments: p.in.Attachments, SentAt: p.in.SentAt.UTC().Truncate(time.Microsecond), Status: p.in.Status}, th: p.th}
		m := &rows[i].Message
		if m.Status == "" {
			m.Status = defaultStatus(m.Direction, m.ExternalID)
		}
		m.stamp(now)
		fields := m.sealedFields()
		if len(m.Attachments) == 0 {
			fields = fields[:1] // none to seal: stored as NULL
		}
		if err := r.s.sealFields(ctx, kindMessage, m.ID, fields); err != nil {
			return BatchResult{}, err
		}
	}
	require := b.Require
	if require == nil {
		require = bun.Safe("TRUE")
	}
	var err error
	met := false
	if r.s.db.Dialect().Name() == dialect.PG {
		res.Stored, res.Marked, met, err = r.ingestOne(ctx, now, require, list, rows)
	} else {
		res.Stored, res.Marked, met, err = r.ingestTx(ctx, now, require, list, rows)
	}
	if err != nil {
		return BatchResult{}, err
	}
	res.Unmet = !met
	return res, nil
}

// batchThread is one conversation of a batch.
type batchThread struct {
	key   ConversationKey
	index string // the blind index of key.ThreadID
	n     int    // its position in the batch's key order, from 1
	// maxSent is the latest of the batch's messages in it (zero: none).
	maxSent time.Time
	// delivered and read are the batch's latest watermarks (zero: none).
	delivered, read time.Time
}

// batchMessage is a message of a batch, sealed, and its conversation.
type batchMessage struct {
	Message
	th *batchThread
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func compareKeys(a, b ConversationKey) int {
	if c := strings.Compare(string(a.Channel), string(b.Channel)); c != 0 {
		return c
	}
	if c := strings.Compare(a.AccountID, b.AccountID); c != 0 {
		return c
	}
	return strings.Compare(a.ThreadID, b.ThreadID)
}

// ingestSQL is Ingest's statement on PostgreSQL. req is Batch.Require
// (TRUE without one): src, empty when it does not hold, holds the batch's
// conversations (one row each, in key order), m its messages, whose
// sealed text and attachments are the pieces of the packed value that
// sealed_at, text_len and attachments_len name (NULL: none). Every row
// travels in pk: b, one bytea value, holds the messages' sealed bytes
// and then an array literal per column (UTF-8), and o where each literal
// starts in b and how long it is (see packedArray and ingestPack).
//
// known looks each conversation up through the unique key (a lateral
// probe, so that the generic plan never hashes the tenant's every
// conversation) and locks it FOR KEY SHARE: it cannot be removed until
// the batch commits, which is all a message needs of its conversation,
// and concurrent batches share the lock. A conversation that is removed
// before it is locked is not found (its watermarks are ignored). written
// is one INSERT … ON CONFLICT DO UPDATE, in key order (ORDER BY n: the
// insert takes the rows as they leave the sort), of the conversations
// that must be written: those not known that get a message (opened, or
// moved forward if another batch opened it meanwhile), and the known ones
// whose watermark moves or whose latest message of the batch falls in a
// later hour than the stored last_message_at — an hour of UTC (date_bin
// from the epoch), whatever the session's time zone: date_trunc's hours
// were the zone's, and in a zone half an hour off UTC one of them spans
// UTC midnight, so the stored time kept a day its conversation had left
// (TestIngestHoursAreUTCWhateverTheSessionZone). The times compare as
// timestamptz throughout, with no cast through the zone's wall time.
// Within the hour a message writes nothing to its conversation (before,
// each delivery gave each of
// its conversations a new row version: a lock and an update, about as
// much of the statement's time as the messages' insert); the stored time
// stays on the day of the exact one, which List's order by day needs, and
// reads add the messages' latest (pgConversations). held gives each
// conversation its id and the watermarks in force, from which stored
// gives each new outbound message its status, in key order and, within a
// conversation, by external id; marked applies the watermarks that moved
// to the messages stored before (the statement's snapshot holds none of
// its own rows). A message is written only after its conversation's row
// is written or locked, so the waits between batches follow one order.
// No row is changed twice.
var ingestSQL = `WITH req AS (
	SELECT ? AS ok
), pk AS NOT MATERIALIZED (
	SELECT ?::int[] AS o, ?::bytea AS b
), src AS (
	SELECT s.* FROM pk AS p CROSS JOIN LATERAL unnest(` + packedArray(0, "text") + `, ` + packedArray(1, "text") + `,
		` + packedArray(2, "text") + `, ` + packedArray(3, "text") + `, ` + packedArray(4, "text") + `,
		` + packedArray(5, "timestamptz") + `, ` + packedArray(6, "timestamptz") + `, ` + packedArray(7, "timestamptz") + `)
		WITH ORDINALITY AS s(channel, account_id, thread_index, id, thread_sealed, max_sent, delivered, read, n)
	WHERE (SELECT r.ok FROM req AS r)
), known AS (
	SELECT s.n, e.id, e.last_message_at, e.delivered_until, e.read_until
	FROM (SELECT * FROM src ORDER BY n) AS s CROSS JOIN LATERAL (SELECT e.id, e.last_message_at, e.delivered_until, e.read_until
		FROM socialcrm_crm_conversations AS e WHERE e.tenant_id = ? AND e.thread_index = s.thread_index AND e.channel = s.channel
		AND e.account_id = s.account_id FOR KEY SHARE) AS e
), written AS (
	INSERT INTO socialcrm_crm_conversations AS cv (tenant_id, id, created_at, updated_at, version, channel, account_id, thread_index,
		thread_sealed, last_message_at, delivered_until, read_until)
	SELECT ?, COALESCE(s.id, k.id), ?::timestamptz, ?::timestamptz, 1, s.channel, s.account_id, s.thread_index,
		CASE WHEN k.n IS NULL AND s.thread_sealed IS NULL THEN decode((1 / (s.n - s.n))::text, 'hex') ELSE decode(s.thread_sealed, 'hex') END,
		COALESCE(s.max_sent, k.last_message_at), s.delivered, s.read
	FROM src AS s LEFT JOIN known AS k ON k.n = s.n
	WHERE CASE WHEN k.n IS NULL THEN s.max_sent IS NOT NULL
		ELSE s.max_sent >= date_bin('1 hour', k.last_message_at, timestamptz 'epoch') + interval '1 hour'
			OR GREATEST(k.delivered_until, s.delivered) IS DISTINCT FROM k.delivered_until
			OR GREATEST(k.read_until, s.read) IS DISTINCT FROM k.read_until END
	ORDER BY s.n
	ON CONFLICT (tenant_id, thread_index, channel, account_id) DO UPDATE SET
		last_message_at = GREATEST(cv.last_message_at, EXCLUDED.last_message_at),
		delivered_until = GREATEST(cv.delivered_until, EXCLUDED.delivered_until),
		read_until = GREATEST(cv.read_until, EXCLUDED.read_until)
	RETURNING cv.id, cv.channel, cv.account_id, cv.thread_index, cv.delivered_until, cv.read_until
), held AS (
	SELECT s.n, t.id, t.delivered_until, t.read_until
	FROM written AS t JOIN src AS s ON s.thread_index = t.thread_index AND s.channel = t.channel AND s.account_id = t.account_id
	UNION ALL
	SELECT k.n, k.id, k.delivered_until, k.read_until
	FROM known AS k
	WHERE NOT EXISTS (SELECT FROM written AS t WHERE t.id = k.id)
), stored AS (
	INSERT INTO socialcrm_crm_messages AS msg (tenant_id, id, created_at, updated_at, version, conversation_id, direction,
		external_id, sent_at, status, text_sealed, attachments_sealed)
	SELECT ?, m.id, ?::timestamptz, ?::timestamptz, 1, t.id, m.direction, m.external_id, m.sent_at,
		CASE WHEN m.direction <> 'out' OR m.status = 'failed' THEN m.status
			WHEN m.sent_at <= t.read_until THEN 'read'
			WHEN m.status <> 'read' AND m.sent_at <= t.delivered_until THEN 'delivered'
			ELSE m.status END,
		substring(p.b FROM m.sealed_at FOR m.text_len), substring(p.b FROM m.sealed_at + COALESCE(m.text_len, 0) FOR m.attachments_len)
	FROM pk AS p CROSS JOIN LATERAL unnest(` + packedArray(8, "bigint") + `, ` + packedArray(9, "text") + `,
		` + packedArray(10, "text") + `, ` + packedArray(11, "text") + `, ` + packedArray(12, "timestamptz") + `,
		` + packedArray(13, "text") + `, ` + packedArray(14, "int") + `, ` + packedArray(15, "int") + `, ` + packedArray(16, "int") + `)
		AS m(thread, id, direction, external_id, sent_at, status, sealed_at, text_len, attachments_len)
	JOIN held AS t ON t.n = m.thread
	ORDER BY m.thread, m.external_id
	ON CONFLICT (tenant_id, conversation_id, external_id) DO NOTHING
	RETURNING 1
), marks AS (
	SELECT t.id, s.delivered, s.read
	FROM written AS t JOIN src AS s ON s.thread_index = t.thread_index AND s.channel = t.channel AND s.account_id = t.account_id
	WHERE s.delivered IS NOT NULL OR s.read IS NOT NULL
), marked AS (
	UPDATE socialcrm_crm_messages AS msg SET
		status = CASE WHEN msg.sent_at <= h.read AND msg.status IN ('pending', 'sent', 'delivered') THEN 'read' ELSE 'delivered' END,
		version = msg.version + 1, updated_at = ?::timestamptz
	FROM marks AS h
	WHERE msg.tenant_id = ? AND msg.conversation_id = h.id AND msg.direction = 'out'
		AND (msg.sent_at <= h.read AND msg.status IN ('pending', 'sent', 'delivered')
			OR msg.sent_at <= h.delivered AND msg.status IN ('pending', 'sent'))
	RETURNING 1
)
SELECT (SELECT count(*) FROM stored), (SELECT count(*) FROM marked), (SELECT r.ok FROM req AS r)`

// packedArray is the SQL of the array literal i of the packed value (pk
// in ingestSQL), cast to typ's array: its bytes cut from b by their place
// in o, read as UTF-8 text. bytea's substring takes them by byte offset,
// without scanning the value for characters. The text takes the
// database's default collation, as a parameter does: convert_from's would
// be that of its encoding's name ("C"), and a comparison of the two
// collations can use no index of the tables' text columns.
func packedArray(i int, typ string) string {
	return fmt.Sprintf(`(convert_from(substring(p.b FROM p.o[%d] FOR p.o[%d]), 'UTF8') COLLATE "default")::%s[]`, 2*i+1, 2*i+2, typ)
}

// ingestArrays is the number of array literals in the packed value.
const ingestArrays = 17

// ingestArgs returns the arguments of ingestSQL: v holds the places of
// the packed value's literals (int[]), the time of the batch and the
// packed value, as values or as parameters.
func ingestArgs(require schema.QueryAppender, tid string, v []any) []any {
	places, now, packed := v[0], v[1], v[2]
	return []any{
		require,
		places, packed, // pk
		tid,           // known
		tid, now, now, // written
		tid, now, now, // stored
		now, tid, // marked
	}
}

// ingestValues is the number of values ingestArgs takes. The packed
// value comes last: the driver copies the values one after another into
// a buffer that it grows as it goes (and again into the Bind message), and
// one large value last grows each once, to its size, where seventeen
// arrays and the sealed bytes grew it by a quarter at a time.
const ingestValues = 3

// ingestOne is Ingest on PostgreSQL: ingestSQL, one statement. The
// conversations the Store knows to exist (openedConversations) travel
// without the sealed thread id and the id that only opening one needs;
// should one of them be gone (removed, or opened by a transaction that
// rolled back), the statement fails before it stores anything, and it
// runs again with every conversation sealed.
func (r *Conversations) ingestOne(ctx context.Context, now time.Time, require schema.QueryAppender, ths []*batchThread, ms []batchMessage) (stored, marked int64, met bool, err error) {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	keys := make([]openedKey, 0, len(ths))
	for _, th := range ths {
		if !th.maxSent.IsZero() {
			keys = append(keys, openedKey{tenant: tid, channel: th.key.Channel, account: th.key.AccountID, index: th.index})
		}
	}
	stored, marked, met, err = r.ingestPG(ctx, tid, now, require, ths, ms, true)
	if dberr.Code(err) == "22012" { // a conversation known to exist was not found
		r.s.opened.forget(keys)
		stored, marked, met, err = r.ingestPG(ctx, tid, now, require, ths, ms, false)
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("crm: ingest messages: %w", err)
	}
	if met {
		r.s.opened.add(keys)
	}
	return stored, marked, met, nil
}

// ingestPG runs ingestSQL for the batch; with known set, the conversations
// the Store knows to exist travel without their sealed thread id.
func (r *Conversations) ingestPG(ctx context.Context, tid string, now time.Time, require schema.QueryAppender, ths []*batchThread, ms []batchMessage, known bool) (stored, marked int64, met bool, err error) {
	// The conversations as they are stored if they do not exist yet: one
	// with watermarks only is never opened, and one known to exist needs
	// neither its id nor its sealed thread id (the statement takes the
	// stored id).
	opening := make([]*Conversation, len(ths))
	for i, th := range ths {
		if th.maxSent.IsZero() || known && r.s.opened.has(openedKey{tenant: tid, channel: th.key.Channel, account: th.key.AccountID, index: th.index}) {
			continue
		}
		c := &Conversation{Channel: th.key.Channel, AccountID: th.key.AccountID, ThreadID: th.key.ThreadID}
		c.stamp(now)
		if err := r.s.sealFields(ctx, kindConversation, c.ID, c.sealedFields()); err != nil {
			return 0, 0, false, err
		}
		opening[i] = c
	}
	places, packed := ingestPack(ths, opening, ms)
	arrays := []any{places, now, packed}
	err = r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
		handle := db.NewRaw("").DB()
		if !sqldb.Folds(handle.DB) {
			// A handle of another driver: the values written into the
			// statement.
			return db.NewRaw(ingestSQL, ingestArgs(require, tid, arrays)...).Scan(ctx, &stored, &marked, &met)
		}
		// The batch's rows travel as parameters, apart from the text,
		// which is then the same for every batch of the tenant and the
		// Page: written, checked by the Guard and parsed by the server
		// once per connection, not 25 KB of it with every delivery.
		text, err := ingestTexts.text(db, handle.QueryGen(), require, tid)
		if err != nil {
			return err
		}
		return db.NewRaw("?", bun.Safe(text)).Scan(sqldb.WithParams(ctx, text, arrays...), &stored, &marked, &met)
	})
	return stored, marked, met, err
}

// ingestPack returns the packed value of ingestSQL for the batch's
// conversations ths (opening: the ones to open, sealed; nil for the
// others) and messages ms, and the places of its array literals in it
// (an int[] literal: where each starts, from 1, and its length). The
// value holds the messages' sealed texts and attachments, which each
// message names by their place and lengths, and then the literals, in the
// order of packedArray's numbers: one value the driver sends as it is
// (binary), where seventeen text values and a bytea value made it grow its
// buffers piece by piece, and hex-encoded sealed bytes were twice their
// size on the wire and decoded by the server.
func ingestPack(ths []*batchThread, opening []*Conversation, ms []batchMessage) (places string, packed []byte) {
	// The room the value takes (a time 30 bytes or so, an id 39, a
	// sealed thread id hex-encoded twice its length), so that it is
	// written without copies; should it take more, it grows.
	size := 64 * ingestArrays
	for i, th := range ths {
		size += len(th.key.Channel) + len(th.key.AccountID) + len(th.index) + 3*36 + 32
		if c := opening[i]; c != nil {
			size += len(c.ID) + 2*len(sealedBytes(c.ThreadSealed)) + 8
		}
	}
	for i := range ms {
		m := &ms[i]
		size += len(sealedBytes(m.TextSealed)) + len(sealedBytes(m.AttachmentsSealed)) +
			len(m.ID) + len(m.Direction) + len(m.ExternalID) + len(m.Status) + 36 + 4*12 + 16
	}
	packed = make([]byte, 0, size)
	for i := range ms {
		packed = append(packed, sealedBytes(ms[i].TextSealed)...)
		packed = append(packed, sealedBytes(ms[i].AttachmentsSealed)...)
	}
	var at pgArray // the places
	at.reserve(12 * 2 * ingestArrays)
	array := func(write func(a *pgArray)) {
		a := pgArray{b: packed, start: len(packed)}
		write(&a)
		packed = a.finish()
		at.int(a.start + 1) // substring counts from 1
		at.int(len(packed) - a.start)
	}
	eachThread := func(write func(a *pgArray, i int, th *batchThread)) {
		array(func(a *pgArray) {
			for i, th := range ths {
				write(a, i, th)
			}
		})
	}
	eachThread(func(a *pgArray, _ int, th *batchThread) { a.text(string(th.key.Channel)) })
	eachThread(func(a *pgArray, _ int, th *batchThread) { a.text(th.key.AccountID) })
	eachThread(func(a *pgArray, _ int, th *batchThread) { a.text(th.index) })
	eachThread(func(a *pgArray, i int, _ *batchThread) {
		if c := opening[i]; c != nil {
			a.text(c.ID)
		} else {
			a.null()
		}
	})
	eachThread(func(a *pgArray, i int, _ *batchThread) {
		if c := opening[i]; c != nil {
			a.bytes(sealedBytes(c.ThreadSealed))
		} else {
			a.null()
		}
	})
	eachThread(func(a *pgArray, _ int, th *batchThread) { a.time(th.maxSent) })
	eachThread(func(a *pgArray, _ int, th *batchThread) { a.time(th.delivered) })
	eachThread(func(a *pgArray, _ int, th *batchThread) { a.time(th.read) })
	eachMessage := func(write func(a *pgArray, m *batchMessage)) {
		array(func(a *pgArray) {
			for i := range ms {
				write(a, &ms[i])
			}
		})
	}
	eachMessage(func(a *pgArray, m *batchMessage) { a.int(m.th.n) })
	eachMessage(func(a *pgArray, m *batchMessage) { a.text(m.ID) })
	eachMessage(func(a *pgArray, m *batchMessage) { a.text(string(m.Direction)) })
	eachMessage(func(a *pgArray, m *batchMessage) {
		if m.ExternalID == "" {
			a.null()
		} else {
			a.text(m.ExternalID)
		}
	})
	eachMessage(func(a *pgArray, m *batchMessage) { a.time(m.SentAt) })
	eachMessage(func(a *pgArray, m *batchMessage) { a.text(string(m.Status)) })
	sealedAt := 1 // substring counts from 1
	eachMessage(func(a *pgArray, m *batchMessage) {
		a.int(sealedAt)
		sealedAt += len(sealedBytes(m.TextSealed)) + len(sealedBytes(m.AttachmentsSealed))
	})
	eachMessage(func(a *pgArray, m *batchMessage) { a.length(sealedBytes(m.TextSealed)) })
	eachMessage(func(a *pgArray, m *batchMessage) { a.length(sealedBytes(m.AttachmentsSealed)) })
	return at.String(), packed
}

// ingestParams are the placeholders of ingestSQL's arrays and time, in
// the order of ingestArgs' values.
var ingestParams = func() []any {
	p := make([]any, ingestValues)
	for i := range p {
		p[i] = bun.Safe("$" + strconv.Itoa(i+1))
	}
	return p
}()

// ingestTexts holds ingestSQL written with its arrays as parameters, by
// tenant and Batch.Require as written: all a delivery's statement text
// depends on, so that a tenant's deliveries from a Page write it once
// (about 4 KB, 27 values put in) rather than once each. The Guard still
// checks the text each time it runs. It forgets everything when it holds
// ingestTextsMax texts.
var ingestTexts = &statementTexts{texts: make(map[string]string)}

const ingestTextsMax = 1 << 10

type statementTexts struct {
	mu    sync.Mutex
	texts map[string]string
}

// text returns ingestSQL for tid and require, with parameters.
func (c *statementTexts) text(db bun.IDB, gen schema.QueryGen, require schema.QueryAppender, tid string) (string, error) {
	var kb [256]byte
	key := append(kb[:0], tid...)
	key = append(key, 0)
	if require != nil {
		var err error
		if key, err = require.AppendQuery(gen, key); err != nil {
			return "", err
		}
	}
	c.mu.Lock()
	text, ok := c.texts[string(key)]
	c.mu.Unlock()
	if ok {
		return text, nil
	}
	q, err := db.NewRaw(ingestSQL, ingestArgs(require, tid, ingestParams)...).AppendQuery(gen, nil)
	if err != nil {
		return "", err
	}
	text = string(q)
	c.mu.Lock()
	if len(c.texts) >= ingestTextsMax {
		clear(c.texts)
	}
	c.texts[string(key)] = text
	c.mu.Unlock()
	return text, nil
}

// openedConversations remembers, for a Store and the Stores of its Using,
// the conversations Ingest stored messages in on PostgreSQL, by tenant,
// channel, account and blind index of the thread id (no personal data in
// clear), so that the next batch need not seal their thread ids nor give
// them ids: about half of the statement's parameters for a delivery whose
// conversations all exist. It forgets everything when it holds
// openedMax conversations. A conversation it holds may have gone since
// (removed, or its batch rolled back with the caller's transaction):
// Ingest then runs its statement again with it sealed.
type openedConversations struct {
	mu   sync.Mutex
	keys map[openedKey]struct{}
}

type openedKey struct {
	tenant  string
	channel Channel
	account string
	index   string
}

const openedMax = 1 << 16

func (o *openedConversations) has(k openedKey) bool {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.keys[k]
	return ok
}

func (o *openedConversations) add(ks []openedKey) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys == nil || len(o.keys)+len(ks) > openedMax {
		o.keys = make(map[openedKey]struct{}, len(ks))
	}
	for _, k := range ks {
		o.keys[k] = struct{}{}
	}
}

func (o *openedConversations) forget(ks []openedKey) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range ks {
		delete(o.keys, k)
	}
}

// ingestTx is Ingest on SQLite: a few statements in one transaction.
func (r *Conversations) ingestTx(ctx context.Context, now time.Time, require schema.QueryAppender, ths []*batchThread, ms []batchMessage) (stored, marked int64, met bool, err error) {
	keys := make([]ConversationKey, len(ths))
	for i, th := range ths {
		keys[i] = th.key
	}
	err = r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		stored, marked = 0, 0
		if err := tx.NewRaw("SELECT ?", require).Scan(ctx, &met); err != nil {
			return fmt.Errorf("crm: ingest messages: %w", err)
		}
		if !met {
			return nil
		}
		convs, err := r.findAll(ctx, tx, keys)
		if err != nil {
			return err
		}
		// One insert opens the missing conversations with their
		// watermarks and last message time (one another transaction
		// opened meanwhile has them moved forward below).
		var opened []Conversation
		for _, th := range ths {
			if _, have := convs[th.key]; have || th.maxSent.IsZero() {
				continue
			}
			o := Conversation{Channel: th.key.Channel, AccountID: th.key.AccountID, ThreadID: th.key.ThreadID,
				LastMessageAt: th.maxSent, DeliveredUntil: th.delivered, ReadUntil: th.read}
			o.stamp(now)
			if err := r.sealConversation(ctx, &o); err != nil {
				return err
			}
			opened = append(opened, o)
		}
		for chunk := range slices.Chunk(opened, batchRows) {
			if _, err := tx.NewInsert().Model(&chunk).
				On("CONFLICT (tenant_id, channel, account_id, thread_index) DO NOTHING").Exec(ctx); err != nil {
				return fmt.Errorf("crm: open conversations: %w", err)
			}
		}
		if len(opened) > 0 {
			if convs, err = r.findAll(ctx, tx, keys); err != nil {
				return err
			}
		}
		rows := make([]Message, 0, len(ms))
		for _, bm := range ms {
			c, have := convs[bm.th.key]
			if !have {
				return fmt.Errorf("crm: ingest messages: conversation not opened")
			}
			c.DeliveredUntil, c.ReadUntil = later(c.DeliveredUntil, bm.th.delivered), later(c.ReadUntil, bm.th.read)
			m := bm.Message
			m.ConversationID = c.ID
			r.initial(&m, c)
			rows = append(rows, m)
		}
		for chunk := range slices.Chunk(rows, batchRows) {
			res, err := tx.NewInsert().Model(&chunk).On("CONFLICT (tenant_id, conversation_id, external_id) DO NOTHING").Exec(ctx)
			if err != nil {
				return fmt.Errorf("crm: ingest messages: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("crm: ingest messages: %w", err)
			}
			stored += n
		}
		// The conversations' times move forward, never back; the
		// watermarks apply to the messages stored before (the batch's
		// have their status already, which the update leaves).
		for chunk := range slices.Chunk(ths, batchRows) {
			for _, col := range []struct {
				name string
				at   func(*batchThread) time.Time
			}{
				{"last_message_at", func(th *batchThread) time.Time { return th.maxSent }},
				{"delivered_until", func(th *batchThread) time.Time { return th.delivered }},
				{"read_until", func(th *batchThread) time.Time { return th.read }},
			} {
				var ids []string
				var pairs []any
				for _, th := range chunk {
					if c, have := convs[th.key]; have && !col.at(th).IsZero() {
						ids = append(ids, c.ID)
						pairs = append(pairs, c.ID, col.at(th))
					}
				}
				if len(ids) > 0 {
					if err := r.forward(ctx, tx, col.name, ids, pairs); err != nil {
						return fmt.Errorf("crm: ingest messages: %w", err)
					}
				}
			}
			n, err := r.markMessages(ctx, tx, now, convs, chunk)
			if err != nil {
				return err
			}
			marked += n
		}
		return nil
	})
	return stored, marked, met, err
}

// markMessages applies the watermarks of ths to the outbound messages of
// their conversations, in one statement: a message sent until the read
// watermark that is not failed becomes read, else one sent until the
// delivery watermark that is pending or sent becomes delivered.
func (r *Conversations) markMessages(ctx context.Context, tx bun.IDB, now time.Time, convs map[ConversationKey]Conversation, ths []*batchThread) (int64, error) {
	var read, delivered []string
	var readArgs, deliveredArgs []any
	for _, th := range ths {
		c, have := convs[th.key]
		if !have {
			continue
		}
		if !th.read.IsZero() {
			read = append(read, "(msg.conversation_id = ? AND msg.sent_at <= ?)")
			readArgs = append(readArgs, c.ID, th.read)
		}
		if !th.delivered.IsZero() {
			delivered = append(delivered, "(msg.conversation_id = ? AND msg.sent_at <= ?)")
			deliveredArgs = append(deliveredArgs, c.ID, th.delivered)
		}
	}
	if len(read)+len(delivered) == 0 {
		return 0, nil
	}
	readFrom := []DeliveryStatus{StatusPending, StatusSent, StatusDelivered}
	deliveredFrom := []DeliveryStatus{StatusPending, StatusSent}
	isRead := bun.SafeQuery("1 = 0")
	if len(read) > 0 {
		isRead = bun.SafeQuery("(("+strings.Join(read, " OR ")+") AND msg.status IN (?))", append(readArgs, bun.In(readFrom))...)
	}
	isDelivered := bun.SafeQuery("1 = 0")
	if len(delivered) > 0 {
		isDelivered = bun.SafeQuery("(("+strings.Join(delivered, " OR ")+") AND msg.status IN (?))", append(deliveredArgs, bun.In(deliveredFrom))...)
	}
	res, err := tx.NewUpdate().Model((*Message)(nil)).
		Set("status = CASE WHEN ? THEN ? ELSE ? END", isRead, StatusRead, StatusDelivered).
		Set("version = version + 1").
		Set("updated_at = ?", now).
		Where("?TableAlias.direction = ?", Outbound).
		WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
			return q.Where("?", isRead).WhereOr("?", isDelivered)
		}).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("crm: mark messages: %w", err)
	}
	return res.RowsAffected()
}

// forward moves column (a time) of the conversations ids forward to the
// times in pairs (id, time, id, time, …), in one statement; a time at or
// before the stored one changes nothing.
func (r *Conversations) forward(ctx context.Context, tx bun.IDB, column string, ids []string, pairs []any) error {
	var sb strings.Builder
	sb.WriteString("CASE")
	for range ids {
		sb.WriteString(" WHEN ?TableAlias.id = ? AND (? IS NULL OR ? < ?) THEN ?")
	}
	sb.WriteString(" ELSE ? END")
	args := make([]any, 0, 6*len(ids)+1)
	col := bun.Ident(column)
	for i := range ids {
		id, at := pairs[2*i], pairs[2*i+1]
		args = append(args, id, col, col, at, at)
	}
	args = append(args, col)
	_, err := tx.NewUpdate().Model((*Conversation)(nil)).
		Set("? = "+sb.String(), append([]any{col}, args...)...).
		Where("?TableAlias.id IN (?)", bun.In(ids)).Exec(ctx)
	return err
}

// findAll returns the conversations with keys that exist, by key.
func (r *Conversations) findAll(ctx context.Context, tx bun.IDB, keys []ConversationKey) (map[ConversationKey]Conversation, error) {
	type group struct {
		channel Channel
		account string
	}
	threads := map[group][]string{}
	byIndex := map[string]string{} // blind index → thread id
	var groups []group
	for _, k := range keys {
		g := group{k.Channel, k.AccountID}
		if _, seen := threads[g]; !seen {
			groups = append(groups, g)
		}
		idx, err := r.threadIndex(ctx, k.ThreadID)
		if err != nil {
			return nil, err
		}
		byIndex[idx] = k.ThreadID
		threads[g] = append(threads[g], idx)
	}
	out := make(map[ConversationKey]Conversation, len(keys))
	for _, g := range groups {
		for chunk := range slices.Chunk(threads[g], batchRows) {
			var cs []Conversation
			if err := tx.NewSelect().Model(&cs).
				Where("?TableAlias.channel = ?", g.channel).
				Where("?TableAlias.account_id = ?", g.account).
				Where("?TableAlias.thread_index IN (?)", bun.In(chunk)).Scan(ctx); err != nil {
				return nil, fmt.Errorf("crm: find conversations: %w", err)
			}
			for _, c := range cs {
				c.ThreadID = byIndex[c.ThreadIndex]
				out[c.Key()] = c
			}
		}
	}
	return out, nil
}

// sealedBytes returns the bytes of s, nil for the zero Sealed, without the
// copy Bytes makes: Ingest only reads them, to copy them into its
// statement's parameters.
func sealedBytes(s vault.Sealed) []byte {
	v, _ := s.Value() // never fails
	b, _ := v.([]byte)
	return b
}

// pgArray writes a PostgreSQL array literal ({a,b,NULL}), which Ingest's
// statement casts to the array type it needs: strings are quoted and
// escaped, bytes hex-encoded (the statement decodes them), times written
// as bun writes a time, in UTC, and zero times as NULL. It appends to b
// from start on, so that the literals of a batch follow each other in
// one buffer (ingestPack).
type pgArray struct {
	b     []byte
	start int
}

// reserve makes room for n more bytes.
func (a *pgArray) reserve(n int) { a.b = slices.Grow(a.b, n) }

func (a *pgArray) sep() {
	if len(a.b) == a.start {
		a.b = append(a.b, '{')
	} else {
		a.b = append(a.b, ',')
	}
}

func (a *pgArray) null() {
	a.sep()
	a.b = append(a.b, "NULL"...)
}

func (a *pgArray) text(s string) {
	a.sep()
	a.b = append(a.b, '"')
	for {
		i := strings.IndexAny(s, `"\`)
		if i < 0 {
			break
		}
		a.b = append(a.b, s[:i]...)
		a.b = append(a.b, '\\', s[i])
		s = s[i+1:]
	}
	a.b = append(a.b, s...)
	a.b = append(a.b, '"')
}

func (a *pgArray) int(n int) {
	a.sep()
	a.b = strconv.AppendInt(a.b, int64(n), 10)
}

func (a *pgArray) time(t time.Time) {
	if t.IsZero() {
		a.null()
		return
	}
	a.sep()
	a.b = append(a.b, '"')
	a.b = appendPGTime(a.b, t)
	a.b = append(a.b, '"')
}

// pgTimeLayout is how pgArray writes a time, in UTC.
const pgTimeLayout = "2006-01-02 15:04:05.999999-07:00"

// appendPGTime appends t as t.UTC().AppendFormat(b, pgTimeLayout) does,
// written by hand for the years 1000 to 9999 (time's layout
// interpreter was about a tenth of Ingest's own CPU on PostgreSQL, with
// four times in each of a delivery's conversations and messages;
// TestPGTimeLayout compares the two).
func appendPGTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 1000 || year > 9999 {
		return t.AppendFormat(b, pgTimeLayout)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, ' ')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	if us := t.Nanosecond() / 1000; us != 0 { // .999999: microseconds, trailing zeros dropped
		n := 6
		for us%10 == 0 {
			us /= 10
			n--
		}
		b = append(b, '.')
		b = appendDigits(b, us, n)
	}
	return append(b, "+00:00"...)
}

// appendDigits appends v (0 <= v < 10^n) in n decimal digits.
func appendDigits(b []byte, v, n int) []byte {
	var digits [6]byte
	for i := n - 1; i >= 0; i-- {
		digits[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, digits[:n]...)
}

// bytes writes b hex-encoded, or NULL when it is empty.
func (a *pgArray) bytes(b []byte) {
	if len(b) == 0 {
		a.null()
		return
	}
	a.sep()
	a.b = hex.AppendEncode(a.b, b)
}

// length writes the length of b, or NULL when it is empty.
func (a *pgArray) length(b []byte) {
	if len(b) == 0 {
		a.null()
		return
	}
	a.int(len(b))
}

// finish ends the literal and returns the buffer it was appended to; a is
// done with.
func (a *pgArray) finish() []byte {
	if len(a.b) == a.start {
		return append(a.b, "{}"...)
	}
	return append(a.b, '}')
}

// String returns the literal; a is done with.
func (a *pgArray) String() string {
	b := a.finish()
	return string(b[a.start:])
}

// plainMessage reports whether the validator's rules of NewMessage (its
// validate tags) certainly hold for m, checked by hand: the validator
// walks the struct by reflection, about a tenth of a webhook delivery's
// CPU at the client when Ingest ran it for every message. With it and
// meta's single-pass ParseWebhook, the process's CPU per delivery of
// BenchmarkPostgresMessengerInterleaved (meta) fell from a median of 2.06
// to 1.81 ms (five alternated runs, load average 5 to 9). It is exact
// for a message without attachments and conservative otherwise: a message
// with attachments (whose URLs the validator parses) goes to the
// validator, as does one for which it says false, and the validator then
// has the last word and names what is wrong. TestMessageFastValidation
// compares it with the validator.
func plainMessage(m *NewMessage) bool {
	const maxExternalID, maxText = 255, 20000
	if len(m.Attachments) > 0 || m.SentAt.IsZero() || !storableTime(m.SentAt) || !plainKey(&m.Conversation) ||
		!cleanText(m.ExternalID) || !sealedText(m.Text) { // validate_values.go: Text is crm:"sealed"
		return false
	}
	switch m.Direction {
	case Inbound, Outbound:
	default:
		return false
	}
	switch m.Status {
	case "", StatusPending, StatusSent, StatusDelivered, StatusRead, StatusFailed:
	default:
		return false
	}
	return runesAtMost(m.ExternalID, maxExternalID) && runesAtMost(m.Text, maxText)
}

// plainKey reports whether the validator's rules of ConversationKey hold
// for k, exactly, checked by hand (see plainMessage).
func plainKey(k *ConversationKey) bool {
	const maxID = 255
	switch k.Channel {
	case ChannelMessenger, ChannelInstagram, ChannelEmail, ChannelSMS, ChannelWhatsApp, ChannelRCS:
	default:
		return false
	}
	return k.AccountID != "" && k.ThreadID != "" && runesAtMost(k.AccountID, maxID) && runesAtMost(k.ThreadID, maxID) &&
		cleanText(k.AccountID) && cleanText(k.ThreadID)
}
