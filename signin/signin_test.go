package signin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeProvider answers discovery, the device authorization and the token
// endpoint; token answers each poll. Unit tests only: the e2e suite signs
// in at a real provider.
func fakeProvider(t *testing.T, device bool, token func(poll int) (int, map[string]any)) string {
	var srv *httptest.Server
	var polls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/auth", "token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/keys"}
		if device {
			doc["device_authorization_endpoint"] = srv.URL + "/device"
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("client_id") != "docker-tls" || !strings.Contains(r.FormValue("scope"), "openid") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": srv.URL + "/activate", "expires_in": 60, "interval": 1})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		code, body := token(int(polls.Add(1)))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDevice(t *testing.T) {
	pending := map[string]any{"error": "authorization_pending"}
	tests := []struct {
		name    string
		device  bool
		token   func(int) (int, map[string]any)
		wantID  string
		wantErr string
	}{
		{"approved on the second poll", true, func(n int) (int, map[string]any) {
			if n < 2 {
				return 400, pending
			}
			return 200, map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": "the.id.token", "refresh_token": "rt"}
		}, "the.id.token", ""},
		{"refused", true, func(int) (int, map[string]any) { return 400, map[string]any{"error": "access_denied"} }, "", "the sign-in was refused at the identity provider"},
		{"expired", true, func(int) (int, map[string]any) { return 400, map[string]any{"error": "expired_token"} }, "", "expired before it was used"},
		{"no ID token", true, func(int) (int, map[string]any) {
			return 200, map[string]any{"access_token": "at", "token_type": "Bearer"}
		}, "", "gave no ID token"},
		{"no device endpoint", false, nil, "", "offers no device sign-in"},
	}
	for _, tc := range tests {
		issuer := fakeProvider(t, tc.device, tc.token)
		var shown Code
		res, err := Device(context.Background(), issuer, "docker-tls", http.DefaultClient, func(c Code) { shown = c })
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case res.IDToken != tc.wantID || res.RefreshToken != "rt" || shown.UserCode != "ABCD-EFGH" || shown.VerificationURI != issuer+"/activate":
			t.Errorf("%s: %+v, shown %+v", tc.name, res, shown)
		}
	}
}

// TestRefresh: a refresh token becomes a new ID token without the person;
// a provider that rotates the token hands back the one to keep, one that
// does not keeps the old; a refused token says so without echoing it.
func TestRefresh(t *testing.T) {
	tests := []struct {
		name      string
		token     func(int) (int, map[string]any)
		wantID    string
		wantKeep  string
		wantError string
	}{
		{"rotated", func(int) (int, map[string]any) {
			return 200, map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": "new.id.token", "refresh_token": "rt-2"}
		}, "new.id.token", "rt-2", ""},
		{"not rotated", func(int) (int, map[string]any) {
			return 200, map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": "new.id.token"}
		}, "new.id.token", "rt-1", ""},
		{"refused", func(int) (int, map[string]any) { return 400, map[string]any{"error": "invalid_grant"} }, "", "", "no longer accepts the sign-in's refresh token (invalid_grant)"},
		{"no ID token", func(int) (int, map[string]any) {
			return 200, map[string]any{"access_token": "at", "token_type": "Bearer"}
		}, "", "", "gave no ID token for the refresh token"},
	}
	for _, tc := range tests {
		issuer := fakeProvider(t, true, tc.token)
		res, err := Refresh(context.Background(), issuer, "docker-tls", http.DefaultClient, "rt-1")
		switch {
		case tc.wantError != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantError) || strings.Contains(err.Error(), "rt-1") {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.wantError)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case res.IDToken != tc.wantID || res.RefreshToken != tc.wantKeep:
			t.Errorf("%s: %+v", tc.name, res)
		}
	}
}
