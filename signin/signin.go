// Package signin signs a person in with the team's identity provider on a
// laptop: the OAuth 2.0 device authorization grant (RFC 8628), so it works
// in a terminal, over SSH, with no local web server. The provider is found
// by OpenID discovery (go-oidc); the grant is golang.org/x/oauth2's,
// which polls within the provider's interval and stops at the code's
// expiry. The client is public (no secret): a secret in every laptop's
// binary would be no secret. What comes back is the ID token the CA
// service verifies, and a refresh token if the provider gave one.
package signin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Scopes asked for: the ID token with the user's email and groups
// (providers that put groups in the ID token only when asked, such as
// Dex and Okta, call that scope "groups"; others ignore it).
var Scopes = []string{oidc.ScopeOpenID, "email", "profile", "groups"}

// Code is what the person must do: open VerificationURI (or Complete,
// which carries the code) and enter UserCode.
type Code struct {
	VerificationURI, Complete, UserCode string
}

// Result is a finished sign-in.
type Result struct {
	IDToken      string
	RefreshToken string
}

// Device runs the device flow with the provider at issuer for clientID:
// show is told the code once, then the provider is polled until the person
// approves, refuses, or the code expires (or ctx ends). hc carries every
// request to the provider.
func Device(ctx context.Context, issuer, clientID string, hc *http.Client, show func(Code)) (*Result, error) {
	ctx = oidc.ClientContext(ctx, hc)
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("the identity provider %s: %w", issuer, err)
	}
	ep := p.Endpoint()
	if ep.DeviceAuthURL == "" {
		return nil, fmt.Errorf("the identity provider %s offers no device sign-in (no device_authorization_endpoint in its discovery document)", issuer)
	}
	cfg := &oauth2.Config{ClientID: clientID, Endpoint: ep, Scopes: scopesOf(p)}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("start the sign-in at %s: %w", issuer, err)
	}
	show(Code{VerificationURI: da.VerificationURI, Complete: da.VerificationURIComplete, UserCode: da.UserCode})
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			switch re.ErrorCode {
			case "access_denied":
				return nil, errors.New("the sign-in was refused at the identity provider")
			case "expired_token":
				return nil, errors.New("the sign-in code expired before it was used: run the command again")
			}
			return nil, fmt.Errorf("the identity provider refused the sign-in: %s", re.ErrorCode)
		}
		return nil, fmt.Errorf("the sign-in: %w", err)
	}
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		return nil, fmt.Errorf("the identity provider %s gave no ID token: its client %s must allow the openid scope", issuer, clientID)
	}
	return &Result{IDToken: id, RefreshToken: tok.RefreshToken}, nil
}

// scopesOf are the scopes asked of p: Scopes, and offline_access where
// the provider says it supports it (a refresh token, so that a laptop can
// sign in again without the person; providers that do not know the scope
// may refuse the whole request, so it is not asked blindly).
func scopesOf(p *oidc.Provider) []string {
	var d struct {
		Scopes []string `json:"scopes_supported"`
	}
	if err := p.Claims(&d); err == nil && slices.Contains(d.Scopes, oidc.ScopeOfflineAccess) {
		return append(slices.Clone(Scopes), oidc.ScopeOfflineAccess)
	}
	return Scopes
}

// Refresh trades a refresh token of an earlier sign-in for a new ID token
// at the provider at issuer, without the person. The provider may rotate
// the refresh token: Result carries the one to keep.
func Refresh(ctx context.Context, issuer, clientID string, hc *http.Client, refreshToken string) (*Result, error) {
	ctx = oidc.ClientContext(ctx, hc)
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("the identity provider %s: %w", issuer, err)
	}
	cfg := &oauth2.Config{ClientID: clientID, Endpoint: p.Endpoint()}
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return nil, fmt.Errorf("the identity provider no longer accepts the sign-in's refresh token (%s)", re.ErrorCode)
		}
		return nil, fmt.Errorf("refresh the sign-in at %s: %w", issuer, err)
	}
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		return nil, fmt.Errorf("the identity provider %s gave no ID token for the refresh token", issuer)
	}
	return &Result{IDToken: id, RefreshToken: cmp.Or(tok.RefreshToken, refreshToken)}, nil
}
