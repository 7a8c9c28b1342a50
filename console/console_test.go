package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServe(t *testing.T) {
	h := New()
	tests := []struct {
		method, path string
		status       int
		contentType  string
		contains     string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="console/app.js">`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/console/app.js", 200, "text/javascript; charset=utf-8", "import"},
		{"GET", "/console/api.js", 200, "text/javascript; charset=utf-8", "Authorization"},
		{"GET", "/console/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/console/nope.js", 404, "", ""},
		{"GET", "/console/", 404, "", ""},
		{"GET", "/console/index.html", 404, "", ""}, // the page only at /
		{"GET", "/console/../index.html", 404, "", ""},
		{"GET", "/index.html", 404, "", ""},
		{"GET", "/workflows", 404, "", ""},
		{"POST", "/", 405, "", ""},
		{"DELETE", "/console/app.js", 405, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			hd := rec.Header()
			for k, want := range map[string]string{
				"Content-Security-Policy": CSP,
				"X-Frame-Options":         "DENY",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := hd.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if tc.status != 200 {
				if cc := hd.Get("Cache-Control"); tc.status == 404 && cc != "no-store" {
					t.Errorf("Cache-Control of a 404: %q", cc)
				}
				return
			}
			if got := hd.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := hd.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control %q", got)
			}
			if !strings.HasPrefix(hd.Get("ETag"), `"`) {
				t.Errorf("ETag %q", hd.Get("ETag"))
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD answered a body")
			}
		})
	}
}

// An unchanged file costs a 304 once the browser has its ETag.
func TestRevalidation(t *testing.T) {
	h := New()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/console/app.js", nil))
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest("GET", "/console/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes", rec.Code, rec.Body.Len())
	}
	req.Header.Set("If-None-Match", `"other"`)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("changed ETag: %d", rec.Code)
	}
}

// Every embedded file is served, and the page and scripts hold no inline
// script or style, which the CSP would block, and load nothing from
// another origin.
func TestEmbeddedFiles(t *testing.T) {
	h := New()
	if h.index == nil {
		t.Fatal("index.html is not embedded")
	}
	n := 0
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel := strings.TrimPrefix(p, "assets/")
		url := AssetPrefix + rel
		if rel == "index.html" {
			url = "/"
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
		if rec.Code != 200 {
			t.Errorf("%s: %d", url, rec.Code)
		}
		// The SVG namespace is a name, not a place anything is loaded from.
		body := strings.ReplaceAll(rec.Body.String(), "'http://www.w3.org/2000/svg'", "")
		for _, bad := range []string{"http://", "https://", "<style", "style=", " onclick=", " onload=", "javascript:", "innerHTML", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		if strings.HasSuffix(p, ".html") && strings.Count(body, "<script") != strings.Count(body, `<script type="module" src=`) {
			t.Errorf("%s has an inline script", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 7 {
		t.Fatalf("only %d embedded files", n)
	}
}

func TestServes(t *testing.T) {
	tests := []struct {
		method, path string
		want         bool
	}{
		{"GET", "/", true},
		{"HEAD", "/", true},
		{"GET", "/console/app.js", true},
		{"GET", "/console/anything", true},
		{"POST", "/", false},
		{"GET", "", false},
		{"GET", "/workflows", false},
		{"GET", "/consoles", false},
		{"PUT", "/console/app.js", false},
	}
	for _, tc := range tests {
		if got := Serves(tc.method, tc.path); got != tc.want {
			t.Errorf("Serves(%s, %q) = %v", tc.method, tc.path, got)
		}
	}
}
