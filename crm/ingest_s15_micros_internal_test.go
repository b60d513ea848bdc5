package crm

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestPGMicrosReadsEveryStorableTime: the times Ingest sends as
// microseconds since 1970 (pgArray.micros) come back on PostgreSQL, through
// pgMicros, as exactly the times PostgreSQL reads from their text — at
// the edges of the storable range (the years 1 and 9999), around 1970 on
// either side, and at 2,000 random microseconds between — whatever the
// session's time zone; NULL stays NULL.
func TestPGMicrosReadsEveryStorableTime(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	times := []time.Time{minStorableTime.Add(time.Microsecond), maxStorableTime,
		time.Unix(0, 0), time.Unix(-1, 999_999_000), time.Unix(0, 1_000), time.Unix(-1, 0),
		time.Date(2255, 6, 5, 23, 47, 34, 740_993_000, time.UTC), // about 2^53 µs after 1970
		time.Date(2026, 11, 23, 9, 0, 0, 123_456_000, time.FixedZone("CET", 3600))}
	r := rand.New(rand.NewPCG(15, 15))
	lo, hi := minStorableTime.Unix(), maxStorableTime.Unix()
	for range 2000 {
		times = append(times, time.Unix(lo+r.Int64N(hi-lo), r.Int64N(1_000_000)*1_000))
	}
	var micros, texts pgArray
	for _, at := range times {
		micros.micros(at)
		texts.text(at.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
	}
	micros.micros(time.Time{})
	texts.null()
	conn, err := db.DB.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "SET TimeZone = 'Asia/Kathmandu'")
	require.NoError(t, err)
	defer conn.ExecContext(ctx, "RESET TimeZone") //nolint:errcheck
	var same, nulls, n int
	require.NoError(t, conn.NewRaw(`SELECT count(*) FILTER (WHERE `+pgMicros("u.x")+` = u.t),
		count(*) FILTER (WHERE `+pgMicros("u.x")+` IS NULL AND u.t IS NULL), count(*)
		FROM unnest(?::bigint[], ?::timestamptz[]) AS u(x, t)`, micros.String(), texts.String()).Scan(ctx, &same, &nulls, &n))
	require.Equal(t, len(times)+1, n)
	require.Equal(t, len(times), same, "times read back differently")
	require.Equal(t, 1, nulls)
}
