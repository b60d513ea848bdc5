package retention

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// DataMap is what the engine knows, as a record of processing: every
// category with its table, columns, purpose, legal basis, period and erase
// action.
type DataMap struct {
	Policy       string         `json:"policy"`
	ClosureGrace string         `json:"closure_grace"`
	Categories   []DataMapEntry `json:"categories"`
}

// DataMapEntry is one category of a DataMap.
type DataMapEntry struct {
	Name            string   `json:"name"`
	Table           string   `json:"table"`
	SubjectBy       []string `json:"subject_by,omitempty"`
	TimeColumn      string   `json:"time_column,omitempty"`
	Purpose         string   `json:"purpose"`
	LegalBasis      string   `json:"legal_basis"`
	Retention       string   `json:"retention"`
	Trigger         string   `json:"trigger,omitempty"`
	LegalObligation bool     `json:"legal_obligation"`
	Erase           string   `json:"erase"`
	BeforeErase     bool     `json:"before_erase_hook"`
	// Sealed lists the sealed columns, stored encrypted and exported
	// opened, as "column as name".
	Sealed []string `json:"sealed,omitempty"`
	// Clear says which columns stay in clear and why (Category.Clear).
	Clear string `json:"clear,omitempty"`
	Note  string `json:"note,omitempty"`
}

// eventSubjectBy is how the data map says a request finds recorded events.
const eventSubjectBy = "the identifier each was recorded for, of any kind (by its keyed hash under identifier protection)"

// DataMap returns the engine's data map, in category registration order.
func (e *Engine) DataMap() DataMap {
	dm := DataMap{Policy: e.policy.Name, ClosureGrace: "none"}
	if e.policy.ClosureGrace > 0 {
		dm.ClosureGrace = formatPeriod(e.policy.ClosureGrace)
	}
	for _, c := range e.Categories() {
		en := DataMapEntry{Name: c.Name, Table: c.Table, TimeColumn: c.Time, Purpose: c.Purpose, LegalBasis: c.LegalBasis,
			Retention: "until erased on request or tenant purge", Erase: c.Erase.String(), BeforeErase: c.BeforeErase != nil, Clear: c.Clear}
		if c.Truncate != nil {
			en.Erase = "truncate (hash chain)"
		}
		for _, sc := range c.Sealed {
			en.Sealed = append(en.Sealed, sc.Column+" as "+strings.Join(sc.names(), ", "))
		}
		for _, k := range sortedKeys(c.Subject) {
			en.SubjectBy = append(en.SubjectBy, k)
		}
		if isEventTable(c) {
			en.SubjectBy = []string{eventSubjectBy}
		}
		if r, ok := e.policy.rule(c.Name); ok {
			en.Retention, en.Trigger, en.LegalObligation, en.Note = r.String(), r.Trigger(), r.Keep, r.Note
		}
		dm.Categories = append(dm.Categories, en)
	}
	return dm
}

// WriteJSON writes the data map as indented JSON.
func (dm DataMap) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(dm)
}

// WriteMarkdown writes the data map as a Markdown document: a table of the
// categories, then one section per category.
func (dm DataMap) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Data map\n\nPolicy: %s. Closed tenants are purged %s after closure.\n\n", dm.Policy, dm.ClosureGrace)
	b.WriteString("| Category | Table | Purpose | Legal basis | Retention | Erase |\n|---|---|---|---|---|---|\n")
	for _, c := range dm.Categories {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", md(c.Name), md(c.Table), md(c.Purpose), md(c.LegalBasis), md(c.Retention), md(c.Erase))
	}
	for _, c := range dm.Categories {
		fmt.Fprintf(&b, "\n## %s\n\n", c.Name)
		fmt.Fprintf(&b, "- Table: `%s`\n", c.Table)
		if len(c.SubjectBy) > 0 {
			fmt.Fprintf(&b, "- Data subject found by: %s\n", strings.Join(c.SubjectBy, ", "))
		} else {
			b.WriteString("- Data subject: none (not personal to one subject)\n")
		}
		if len(c.Sealed) > 0 {
			fmt.Fprintf(&b, "- Stored sealed (encrypted), exported opened: %s\n", strings.Join(c.Sealed, ", "))
		}
		if c.Clear != "" {
			fmt.Fprintf(&b, "- In clear: %s\n", c.Clear)
		}
		if c.TimeColumn != "" {
			fmt.Fprintf(&b, "- Aged by: `%s`\n", c.TimeColumn)
		}
		fmt.Fprintf(&b, "- Purpose: %s\n- Legal basis: %s\n- Retention: %s\n", c.Purpose, c.LegalBasis, c.Retention)
		if c.Trigger != "" {
			fmt.Fprintf(&b, "- Trigger: %s\n", c.Trigger)
		}
		if c.LegalObligation {
			b.WriteString("- Kept through erasure requests and tenant purge (legal obligation)\n")
		}
		fmt.Fprintf(&b, "- Erase action: %s", c.Erase)
		if c.BeforeErase {
			b.WriteString(" (after a side-effect hook)")
		}
		b.WriteString("\n")
		if c.Note != "" {
			fmt.Fprintf(&b, "- Note: %s\n", c.Note)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func md(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
