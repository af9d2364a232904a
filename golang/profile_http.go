package ferry

import (
	"bytes"
	"net/http"
)

// HeapProfileHandler returns an http.Handler that serves ferry's heap profile (WriteHeapProfile),
// for go tool pprof to fetch. Mount it next to net/http/pprof's handlers, which a program that
// imports net/http/pprof serves on http.DefaultServeMux:
//
//	http.Handle("GET /debug/pprof/ferry", ferry.HeapProfileHandler())
//
// and then: go tool pprof -top http://HOST:PORT/debug/pprof/ferry. The method in the pattern is
// needed with Go 1.22's patterns (a module whose go.mod says go 1.22 or later): net/http/pprof
// registers "GET /debug/pprof/", and a pattern without a method would conflict with it (Handle
// panics). With the older patterns, leave the method out.
func HeapProfileHandler() http.Handler {
	return http.HandlerFunc(serveHeapProfile)
}

func serveHeapProfile(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := WriteHeapProfile(&buf); err != nil {
		http.Error(w, "ferry: heap profile: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// The headers net/http/pprof sends with a profile.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="ferry-heap"`)
	_, _ = w.Write(buf.Bytes())
}
