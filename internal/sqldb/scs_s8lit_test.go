package sqldb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// bun writes a string as '…' with only its quotes doubled, and params and
// the Guard read it so: both assume standard_conforming_strings is on. A
// database (or role, or DSN) whose default turns it off makes the server
// read a backslash before a quote as an escape, so that a value ending in
// a backslash runs on into the next literal and the next value executes
// as SQL. The connection keeps it on whatever the defaults say.
func TestStandardConformingStringsStayOn(t *testing.T) {
	dsn := postgresDSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// A database of its own, dropped at the end: the setting under test is
	// the database's default.
	name := fmt.Sprintf("socialcrm_scs_off_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Error(err)
		}
	})
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+name+` SET standard_conforming_strings = off`); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	withParam := *u
	q := withParam.Query()
	q.Set("standard_conforming_strings", "off")
	withParam.RawQuery = q.Encode()
	for _, dsn := range []string{u.String(), withParam.String()} {
		db, err := Postgres(dsn)
		if err != nil {
			t.Fatal(err)
		}
		a, b := `\`, ` UNION ALL SELECT current_user --`
		var got []string
		err = db.NewRaw("SELECT ? AS v UNION ALL SELECT ?", a, b).Scan(ctx, &got)
		db.Close()
		if err != nil {
			t.Fatalf("%v", err)
		}
		if len(got) != 2 || got[0] != a || got[1] != b {
			t.Errorf("selected %q, want %q, %q: the server read the literals otherwise than they were written", got, a, b)
		}
	}
}

// A session turned off after it opened runs no further statement.
func TestStandardConformingStringsOffRefused(t *testing.T) {
	dsn := postgresDSN(t)
	ctx := context.Background()
	db, err := Postgres(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	_, _ = cn.ExecContext(ctx, "SET standard_conforming_strings = off")
	var got string
	err = cn.QueryRowContext(ctx, `SELECT '\' AS v UNION ALL SELECT ' UNION ALL SELECT current_user --'`).Scan(&got)
	if !errors.Is(err, ErrNonConformingStrings) {
		t.Fatalf("got %q, %v, want ErrNonConformingStrings", got, err)
	}
	withConn2 := func() {
		c2, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		var v string
		if err := c2.QueryRowContext(ctx, `SELECT '\'`).Scan(&v); err != nil || v != `\` {
			t.Errorf("after the session was returned: %q, %v, want a conforming session", v, err)
		}
	}
	cn.Close() // the pool drops the session instead of handing it out again
	db.SetMaxOpenConns(1)
	withConn2()
}

// postgresDSN returns the test server's DSN, or skips tb when none is set
// (plain go test runs without PostgreSQL).
func postgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("SOCIALCRM_TEST_POSTGRES")
	if dsn == "" {
		tb.Skip("SOCIALCRM_TEST_POSTGRES not set")
	}
	return dsn
}
