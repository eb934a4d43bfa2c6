package remoteca

// The JSON shapes of cfssl's API (api/v1/cfssl/info and authsign), the
// subset docker-tls speaks as a server and as a client.

// InfoRequest is the body of POST /api/v1/cfssl/info.
type InfoRequest struct {
	Label   string `json:"label"`
	Profile string `json:"profile,omitempty"`
}

// InfoResult is the result of /info.
type InfoResult struct {
	Certificate  string   `json:"certificate"`
	Usages       []string `json:"usages,omitempty"`
	ExpiryString string   `json:"expiry,omitempty"`
	// OIDC says the service accepts sign-in, and with which provider (a
	// docker-tls extension; cfssl clients ignore it).
	OIDC *OIDCInfo `json:"oidc,omitempty"`
}

// OIDCInfo is the identity provider a laptop signs in with: its issuer and
// the public client (no secret) the service accepts ID tokens for.
type OIDCInfo struct {
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
}

// SignInRequest is the body of POST OIDCPath: a CSR and the ID token of
// the signed-in user; nothing else is sent.
type SignInRequest struct {
	CertificateRequest string `json:"certificate_request"`
	IDToken            string `json:"id_token"`
}

// AuthenticatedRequest is the body of POST /api/v1/cfssl/authsign: Request
// is a SignRequest in JSON, Token authenticates it: with a cfssl auth key,
// HMAC-SHA256(key, Request); with a docker-tls enrollment token, the token
// itself (the connection is TLS to a pinned CA).
type AuthenticatedRequest struct {
	Timestamp     int64  `json:"timestamp,omitempty"`
	RemoteAddress []byte `json:"remote_address,omitempty"`
	Token         []byte `json:"token"`
	Request       []byte `json:"request"`
}

// SignRequest asks for a certificate for the key in CertificateRequest.
type SignRequest struct {
	Hosts              []string `json:"hosts,omitempty"`
	CertificateRequest string   `json:"certificate_request"`
	Profile            string   `json:"profile,omitempty"`
	Label              string   `json:"label,omitempty"`
	// Lifetime is docker-tls's extension (cfssl ignores it): the life
	// asked for, as a Go duration ("24h").
	Lifetime string `json:"lifetime,omitempty"`
}

// SignResult is the result of /authsign.
type SignResult struct {
	Certificate string `json:"certificate"`
	// Bundle is docker-tls's extension on renewals: the CAs to trust now
	// (the old and the new one during a rotation), as PEM.
	Bundle string `json:"bundle,omitempty"`
	// Note is docker-tls's extension on enrollments: what the service
	// changed of the request (a lifetime cut short), for the client to
	// show.
	Note string `json:"note,omitempty"`
}

// Response wraps every cfssl API answer.
type Response struct {
	Success  bool            `json:"success"`
	Result   any             `json:"result"`
	Errors   []ResponseError `json:"errors"`
	Messages []any           `json:"messages"`
}

// ResponseError is one error in a Response.
type ResponseError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}
