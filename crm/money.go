package crm

import (
	"fmt"
	"math/big"
)

// LineItem is one line of an invoice. Amounts are integers in the minor
// unit of the invoice's currency (cents for EUR and USD, yen for JPY); the
// tax rate is in basis points (2000 = 20%). Net, Tax and Total are computed
// by the Store, never taken from the caller.
type LineItem struct {
	Description string `json:"description" validate:"required,max=500"`
	// Quantity is a whole number of units, at least 1.
	Quantity int64 `json:"quantity" validate:"min=1"`
	// UnitPrice may be negative for a discount line.
	UnitPrice int64 `json:"unit_price"`
	// TaxRate is in basis points, 0 to 10000.
	TaxRate int64 `json:"tax_rate" validate:"min=0,max=10000"`

	// Net is Quantity × UnitPrice.
	Net int64 `json:"net"`
	// Tax is Net × TaxRate / 10000, rounded half away from zero.
	Tax int64 `json:"tax"`
	// Total is Net + Tax.
	Total int64 `json:"total"`
}

// Totals are an invoice's computed sums, in minor units.
type Totals struct {
	Subtotal int64 `json:"subtotal"`
	Tax      int64 `json:"tax"`
	Total    int64 `json:"total"`
}

var (
	bigBasis = big.NewInt(10000)
	bigHalf  = big.NewInt(5000)
	minInt64 = big.NewInt(-1 << 63)
	maxInt64 = big.NewInt(1<<63 - 1)
)

// fits returns x as an int64, or false when it does not fit.
func fits(x *big.Int) (int64, bool) {
	if x.Cmp(minInt64) < 0 || x.Cmp(maxInt64) > 0 {
		return 0, false
	}
	return x.Int64(), true
}

// computeTotals fills each line's Net, Tax and Total and returns the sums.
// Arithmetic is exact; a result outside int64 is a validation error naming
// the field that overflowed (rule "overflow"), never a wrapped value.
func computeTotals(lines []LineItem) (Totals, error) {
	var sub, tax, total big.Int
	for i := range lines {
		l := &lines[i]
		field := func(name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }
		net := new(big.Int).Mul(big.NewInt(l.Quantity), big.NewInt(l.UnitPrice))
		t := new(big.Int).Mul(net, big.NewInt(l.TaxRate))
		if t.Sign() < 0 {
			t.Sub(t, bigHalf)
		} else {
			t.Add(t, bigHalf)
		}
		t.Quo(t, bigBasis) // truncates toward zero: half away from zero overall
		lt := new(big.Int).Add(net, t)
		var ok bool
		if l.Net, ok = fits(net); !ok {
			return Totals{}, overflow(field("net"))
		}
		if l.Tax, ok = fits(t); !ok {
			return Totals{}, overflow(field("tax"))
		}
		if l.Total, ok = fits(lt); !ok {
			return Totals{}, overflow(field("total"))
		}
		sub.Add(&sub, net)
		tax.Add(&tax, t)
		total.Add(&total, lt)
	}
	var out Totals
	var ok bool
	if out.Subtotal, ok = fits(&sub); !ok {
		return Totals{}, overflow("subtotal")
	}
	if out.Tax, ok = fits(&tax); !ok {
		return Totals{}, overflow("tax")
	}
	if out.Total, ok = fits(&total); !ok {
		return Totals{}, overflow("total")
	}
	return out, nil
}
