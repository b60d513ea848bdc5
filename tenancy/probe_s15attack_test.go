package tenancy_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestProbeS15(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: "wa", Name: "secret-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: "wb", Name: "mine-b", Size: 1}))
		for _, q := range strings.Split(probes, "\n") {
			q = strings.TrimSpace(q)
			if q == "" || strings.HasPrefix(q, "#") {
				continue
			}
			q = strings.ReplaceAll(strings.ReplaceAll(q, "%B", b), "%A", a)
			out, err := execAs(db, b, q)
			flag := ""
			if strings.Contains(out, "secret-a") {
				flag = "!!!LEAK "
			}
			t.Logf("%s%s\n   => %q err=%v", flag, q, out, err)
		}
	})
}

const probes = `
SELECT name FROM test_widgets w, (SELECT '%B' AS tenant_id) test_widgets WHERE test_widgets.tenant_id = '%B'
SELECT w.name FROM test_widgets AS w JOIN (SELECT '%B' AS tenant_id) AS x USING (tenant_id)
SELECT w.name FROM (SELECT '%B' AS tenant_id) AS x RIGHT JOIN test_widgets AS w USING (tenant_id) WHERE tenant_id = '%B'
SELECT w.name FROM (SELECT '%B' AS tenant_id) AS x FULL JOIN test_widgets AS w USING (tenant_id) WHERE tenant_id = '%B'
SELECT w.name FROM test_widgets AS w FULL JOIN (SELECT '%B' AS tenant_id) AS x USING (tenant_id) WHERE x.tenant_id = '%B'
SELECT w.name FROM test_widgets w WHERE w.tenant_id = "tenant_id"
SELECT name FROM test_widgets WHERE tenant_id = '%B' COLLATE NOCASE
SELECT name FROM test_widgets WHERE tenant_id = '%B' OR 1
SELECT name FROM test_widgets WHERE tenant_id = '%B'` + "\x00" + `; SELECT name FROM test_widgets
SELECT w.name FROM test_widgets w JOIN test_widgets w2 ON w2.tenant_id = '%B' WHERE w.tenant_id = w2.tenant_id OR 1
SELECT name FROM test_widgets NATURAL JOIN (SELECT '%B' AS tenant_id) x
SELECT w.name FROM test_widgets w NATURAL JOIN (SELECT '%B' AS tenant_id) x WHERE tenant_id = '%B'
SELECT w.name FROM test_widgets w, (SELECT '%B' AS tenant_id) x WHERE x.tenant_id = '%B' AND w.tenant_id = x.tenant_id COLLATE NOCASE
SELECT name FROM main.test_widgets AS test_widgets WHERE test_widgets.tenant_id = '%B'
SELECT name FROM test_widgets WHERE test_widgets.tenant_id = '%B' UNION ALL SELECT name FROM test_widgets WHERE tenant_id = '%B'
SELECT (SELECT group_concat(name) FROM test_widgets) FROM test_widgets WHERE tenant_id = '%B'
SELECT name FROM test_widgets WHERE tenant_id = '%B' LIMIT -1 OFFSET 0
SELECT name FROM test_widgets WHERE (tenant_id, 1) = ('%B', 1)
SELECT name FROM test_widgets WHERE (tenant_id) IN (('%B'))
SELECT name FROM test_widgets WHERE tenant_id IN (VALUES ('%B'))
SELECT name FROM test_widgets WHERE tenant_id = ('%B')
SELECT name FROM test_widgets WHERE tenant_id = + '%B'
SELECT name FROM test_widgets WHERE tenant_id = '%B' -- x
SELECT name FROM test_widgets t1 WHERE t1.tenant_id = '%B' AND t1.id IN (SELECT id FROM test_widgets t2 WHERE t2.tenant_id = t1.tenant_id OR t2.tenant_id <> '')
SELECT w.name FROM test_widgets w WHERE EXISTS (SELECT 1 FROM test_widgets w WHERE w.tenant_id = '%B')
SELECT w.name FROM test_widgets w LEFT JOIN test_gadgets g ON g.tenant_id = '%B' WHERE g.tenant_id = w.tenant_id OR true
SELECT name FROM test_widgets INDEXED BY test_widgets_tenant_id WHERE tenant_id = '%B'
SELECT name FROM test_widgets NOT INDEXED WHERE tenant_id = '%B'
SELECT name FROM "main"."TEST_WIDGETS" WHERE "TENANT_ID" = '%B'
SELECT name FROM temp.test_widgets WHERE tenant_id = '%B'
CREATE TEMP VIEW v1 AS SELECT 1 AS tenant_id
WITH test_gadgets AS (SELECT * FROM test_widgets WHERE tenant_id = '%B') SELECT name FROM test_widgets, test_gadgets WHERE test_gadgets.tenant_id = '%B'
WITH x AS MATERIALIZED (SELECT * FROM test_widgets WHERE tenant_id = '%B') SELECT name FROM x
SELECT name FROM test_widgets WHERE tenant_id = '%B' AND tenant_id = tenant_id
SELECT name FROM test_widgets WHERE tenant_id = '%B' ORDER BY (SELECT 1 FROM test_gadgets)
SELECT w.name FROM test_widgets w WHERE w.tenant_id = 'x' OR w.tenant_id = '%B'
SELECT name FROM test_widgets WHERE rowid = rowid AND tenant_id = '%B'
SELECT name FROM test_widgets WHERE tenant_id = '%B' WINDOW w AS (ORDER BY (SELECT name FROM test_widgets))
SELECT name, (SELECT name FROM test_widgets x WHERE x.tenant_id = test_widgets.tenant_id OR 1) FROM test_widgets WHERE tenant_id = '%B'
`
