// Package console is hookgate's web console: a page and its scripts and
// styles, embedded in the binary, served by the management API at the root
// of its prefix. The files hold no data and are served without a token;
// every data call the page makes goes to the JSON API with the bearer token
// the user signed in with (kept in the tab's sessionStorage only).
//
// The page is plain HTML, CSS and JavaScript modules: no framework, no
// build step, nothing loaded from another origin. A strict
// Content-Security-Policy allows scripts, styles and connections to the
// page's own origin only, and no inline script or style.
//
// The package imports nothing from Caddy.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// AssetPrefix is the path, relative to the mount point, under which the
// scripts and styles are served ("/console/app.js"). The page is served at
// "/".
const AssetPrefix = "/console/"

// CSP is the Content-Security-Policy of every answer.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// file is an embedded file with its validator.
type file struct {
	body        []byte
	etag        string
	contentType string
}

// Handler serves the console: the page at "/" and the assets under
// AssetPrefix, to GET and HEAD; any other path is a 404.
type Handler struct {
	index *file
	files map[string]*file // by path under AssetPrefix
}

// New returns the console handler over the embedded files.
func New() *Handler {
	h := &Handler{files: map[string]*file{}}
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		f := &file{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: contentType(p)}
		rel := strings.TrimPrefix(p, "assets/")
		if rel == "index.html" {
			h.index = f
		} else {
			h.files[rel] = f
		}
		return nil
	})
	return h
}

// contentType is the media type of an asset, by its extension.
func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Serves reports whether the console answers the path (relative to the
// mount point) for the method: GET or HEAD of "/" or of an asset path.
func Serves(method, p string) bool {
	return (method == http.MethodGet || method == http.MethodHead) &&
		(p == "/" || strings.HasPrefix(p, AssetPrefix))
}

// ServeHTTP serves the page at "/" and the assets under AssetPrefix, with
// the security headers on every answer. Files are revalidated on each use
// (Cache-Control: no-cache) against an ETag of their content, so a new
// binary's files are picked up at once and unchanged ones cost a 304.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var f *file
	switch {
	case r.URL.Path == "/":
		f = h.index
	case strings.HasPrefix(r.URL.Path, AssetPrefix):
		f = h.files[strings.TrimPrefix(r.URL.Path, AssetPrefix)]
	}
	if f == nil {
		hd.Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", f.contentType)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// Interface guard.
var _ http.Handler = (*Handler)(nil)
