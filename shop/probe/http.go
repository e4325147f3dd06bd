package probe

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Handler serves the prober's HTTP API:
//
//	GET /timeline[?samples=true[&since=N]]  probeapi.Timeline (with since, the writes after N)
//	GET /verify                   probeapi.Verification (503 if a store could not be read)
//	GET /healthz                  200 while the process runs
func (p *Prober) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /timeline", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		withSamples, _ := strconv.ParseBool(q.Get("samples"))
		var since int64
		if v := q.Get("since"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since must be a sequence number, got " + strconv.Quote(v)})
				return
			}
			since = n
		}
		writeJSON(w, http.StatusOK, p.TimelineSince(withSamples, since))
	})
	mux.HandleFunc("GET /verify", func(w http.ResponseWriter, r *http.Request) {
		v := p.Verify(r.Context())
		code := http.StatusOK
		for _, s := range v.Stores {
			if s.Error != "" {
				code = http.StatusServiceUnavailable
			}
		}
		writeJSON(w, code, v)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
