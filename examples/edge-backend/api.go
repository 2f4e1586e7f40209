package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// api serves the stored messages and the health of the backend's links.
type api struct {
	store   *store
	sub     interface{ connected() bool }
	queue   *queue
	token   [sha256.Size]byte // of the API token: compared in constant time
	version string
	log     *slog.Logger

	redisDown atomic.Bool // as the last health check found it
}

func (a *api) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.health)
	mux.HandleFunc("GET /api/healthz", a.health)
	mux.HandleFunc("GET /api/messages", a.authorized(a.messages))
	return mux
}

// health is 200 when the MQTT session is up and Redis answers to our
// password, 503 otherwise; the body says which, and never why in detail
// (the log does).
func (a *api) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h := struct {
		Status  string `json:"status"`
		Version string `json:"version"`
		MQTT    string `json:"mqtt"`
		Redis   string `json:"redis"`
		Waiting int64  `json:"waiting"`
		Dropped int64  `json:"dropped"`
	}{Status: "ok", Version: a.version, MQTT: "connected", Redis: "ok", Waiting: a.queue.pending.Load(), Dropped: a.queue.dropped.Load()}
	code := http.StatusOK
	if !a.sub.connected() {
		h.MQTT, h.Status, code = "disconnected", "unhealthy", http.StatusServiceUnavailable
	}
	err := a.store.ping(ctx)
	if err != nil {
		h.Redis, h.Status, code = "unreachable", "unhealthy", http.StatusServiceUnavailable
	}
	// The log says why, once per change.
	if down := err != nil; a.redisDown.Swap(down) != down {
		if down {
			a.log.Error("health: redis check failed", "err", err)
		} else {
			a.log.Info("health: redis answers again")
		}
	}
	writeJSON(w, code, h)
}

// authorized lets a request through only with "Authorization: Bearer TOKEN".
func (a *api) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edge-backend"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong API token (Authorization: Bearer TOKEN)"})
			return
		}
		next(w, r)
	}
}

// messages serves the newest messages, newest first: ?limit=N (default 50).
func (a *api) messages(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be a positive number"})
			return
		}
		limit = min(n, a.store.keep)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	msgs, err := a.store.recent(ctx, limit)
	if err != nil {
		a.log.Error("reading messages", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "messages unavailable: Redis does not answer (see the backend's log)"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
