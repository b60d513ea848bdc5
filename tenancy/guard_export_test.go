package tenancy

// ShapesForTest returns how many statement shapes g keeps.
func ShapesForTest(g *Guard) int { return g.shapes.len() }

// ShapeCacheSize is the bound of a Guard's shape cache.
const ShapeCacheSize = shapeCacheSize
