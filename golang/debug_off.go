//go:build !ferrydebug

package ferry

// debugMode is true in builds with the ferrydebug tag (see debug_on.go).
const debugMode = false

// debugCollect forces a garbage collection in ferrydebug builds; here it does nothing.
func debugCollect() {}
