// Package reposerve is the HTTP server of an update repository, what
// `pibake serve` runs and the fleet simulation (internal/fleetsim)
// measures: a read-only handler over a folder (files only: no listings,
// never a name starting with a dot or ending in .new), strong ETags and
// 304s for conditional polls, and the limits one connection may hold
// (Limits). It serves whatever the folder holds; the folder's layout is
// updater/channel's and its writing is publish's.
package reposerve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

// Limits bound what one connection to the server may hold.
//
// There is no limit on a whole response: http.Server's WriteTimeout (and
// ReadTimeout, which also ends the request's context while a response is
// still going out) counts from the request, and a 300 MB artifact takes
// 40 minutes at 1 Mbit/s and 10 hours at 64 kbit/s, so any value that lets
// the slowest device finish holds a stalled connection as long. Instead
// each write of a response must go out within Stall (a deadline set
// through http.ResponseController before every write): a client that
// stops reading is cut off, one that reads at any pace is not. A request
// has Header to arrive, and a kept-alive connection Idle to bring the
// next one; a request with a body (nothing here reads one) is refused and
// its connection closed, so no body is read without a deadline.
type Limits struct {
	Header time.Duration // to read a request's line and headers
	Idle   time.Duration // between two requests on a kept-alive connection
	Stall  time.Duration // for one write of a response to go out
}

// DefaultLimits are pibake serve's.
var DefaultLimits = Limits{Header: 10 * time.Second, Idle: 2 * time.Minute, Stall: time.Minute}

// New is the server of the repository in root, read-only: files only
// (a folder is not found: no listing), never a name starting with a dot
// or ending in .new (publish's uploads and atomic writes in progress).
// log (nil: discard) gets a line per request. Give it an os.Root's FS,
// so that no path and no symlink inside the folder leads out of it.
func New(root fs.FS, log *slog.Logger, l Limits) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	files := http.FileServerFS(filesOnly{root})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every response, even one of headers only, has Stall to go out.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(l.Stall))
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Connection", "close")
			http.Error(w, "read-only repository", http.StatusMethodNotAllowed)
			return
		}
		if r.ContentLength != 0 {
			w.Header().Set("Connection", "close")
			http.Error(w, "a request with a body", http.StatusBadRequest)
			return
		}
		log.Info("request", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("range", r.Header.Get("Range")))
		// Names starting with a dot are publish's uploads in progress
		// (.upload-*) and atomic writes not yet renamed (.new): never
		// served, so no device reads a partial file.
		for _, part := range strings.Split(r.URL.Path, "/") {
			if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".new") {
				http.NotFound(w, r)
				return
			}
		}
		// An ETag lets a device ask for a channel's document
		// conditionally (If-None-Match): an idle poll is answered 304,
		// headers only. http.FileServer checks it (and Last-Modified).
		if tag := etag(root, strings.TrimPrefix(r.URL.Path, "/")); tag != "" {
			w.Header().Set("ETag", tag)
		}
		files.ServeHTTP(&stallWriter{ResponseWriter: w, rc: rc, stall: l.Stall}, r)
	})
	return &http.Server{ReadHeaderTimeout: l.Header, IdleTimeout: l.Idle, MaxHeaderBytes: 64 << 10, Handler: handler}
}

// Serve runs srv on ln until ctx ends, then shuts it down (connections
// in progress get 5 seconds to finish).
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: on %s: %w", ln.Addr(), err)
	}
	return nil
}

// maxHashed bounds the files whose content the server hashes for their
// ETag: the channels' documents are far smaller, blobs are named by
// their hash.
const maxHashed = 1 << 20

// etag is the strong validator of the file at p: a blob's name (its
// sha256), else the sha256 of a small file's content (the documents,
// rewritten in place by publish: a time stamp of one second could not
// tell two of them apart). "" for anything else.
func etag(root fs.FS, p string) string {
	if channel.IsBlobPath(p) {
		return `"sha256-` + strings.TrimPrefix(p, channel.BlobsDir+"/") + `"`
	}
	if !fs.ValidPath(p) {
		return ""
	}
	f, err := root.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() > maxHashed {
		return ""
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, maxHashed)); err != nil {
		return ""
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// stallWriter gives every write of a response stall to go out. It has no
// ReadFrom, so a file goes out in bounded writes (not one sendfile the
// deadline could not be renewed during).
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (s *stallWriter) Write(p []byte) (int, error) {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.stall)); err != nil {
		return 0, err
	}
	return s.ResponseWriter.Write(p)
}

func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// filesOnly is a file system in which a folder does not exist: a
// repository is read by the paths its documents name, and a listing
// would show every channel and blob (and http.FileServer would serve a
// folder's index.html).
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return file, nil
}
