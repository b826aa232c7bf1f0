package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/roomcast/roomcast/bridge"
)

// writeError answers with err's code and the status that goes with it.
func writeError(w http.ResponseWriter, err error) {
	var e *bridge.Error
	if !errors.As(err, &e) {
		e = bridge.NewError(bridge.CodeInternal, "%v", err)
	}
	if e.Code == bridge.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="roomcast"`)
	}
	writeJSON(w, e.HTTPStatus(), ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// loadPerCore is the 1-minute load average divided by the cores, 0 when
// the system does not say (not Linux).
func loadPerCore() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	l, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0
	}
	return l / float64(runtime.NumCPU())
}
