package policy

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
)

// Call is one Docker API request, as dockerd hands it to an authorization
// plugin: the method, the request URI and the JSON body (nil when dockerd
// passed none: no body, or one too large).
type Call struct {
	Method string
	URI    string
	Body   []byte
	// BodyTooLarge is set when the request had a body that dockerd did
	// not pass on.
	BodyTooLarge bool
}

// Need is the role a call needs, and why, in words for a refusal.
type Need struct {
	Role   Role
	Reason string
}

// Rules judge calls. They are compiled once, by NewRules, for the life of
// the process that judges (no work at package init: every docker tls
// command links this package).
type Rules struct {
	readOnly, containerCreate, execCreate, volumeCreate, serviceChange, pluginChange, swarmChange *regexp.Regexp
}

// NewRules compiles the rules.
func NewRules() *Rules {
	return &Rules{
		readOnly:        regexp.MustCompile(readOnlyPaths),
		containerCreate: regexp.MustCompile(`^/containers/create/?$`),
		execCreate:      regexp.MustCompile(`^/containers/[^/]+/exec/?$`),
		volumeCreate:    regexp.MustCompile(`^/volumes/create/?$`),
		serviceChange:   regexp.MustCompile(`^/services/(create|[^/]+/update)/?$`),
		pluginChange:    regexp.MustCompile(`^/plugins/(pull|create|[^/]+/(enable|upgrade|set|push))/?$`),
		swarmChange:     regexp.MustCompile(`^/(swarm/(init|join|leave|update|unlock)|nodes/[^/]+(/update)?)/?$`),
	}
}

// Required is the role c needs.
func (r *Rules) Required(c Call) Need {
	path := apiPath(c.URI)
	method := strings.ToUpper(c.Method)
	if method == "GET" || method == "HEAD" {
		// Any certificate of the engine's CA may ping: it only says the
		// API version, and the docker CLI pings before every command, so
		// a refusal then names the command's own call.
		if path == "/_ping" || path == "/_ping/" {
			return Need{None, "a ping only says the API version"}
		}
		if r.readOnly.MatchString(path) {
			return Need{Viewer, "it only reads"}
		}
		return Need{Operator, "it reads container contents or streams (copy, export, attach)"}
	}
	if root, why := r.rootOnHost(method, path, c); root {
		return Need{Admin, why}
	}
	return Need{Operator, "it changes the engine"}
}

// apiPath is the URI's path without the /vX.Y version prefix.
func apiPath(uri string) string {
	p := uri
	if u, err := url.ParseRequestURI(uri); err == nil {
		p = u.Path
	}
	if rest, ok := strings.CutPrefix(p, "/v"); ok {
		if i := strings.IndexByte(rest, '/'); i > 0 && strings.Trim(rest[:i], "0123456789.") == "" {
			p = rest[i:]
		}
	}
	return p
}

// readOnlyPaths are the GET endpoints that only read metadata, logs and
// events; what is left (archive, export, attach, image save) hands out
// contents or a stream into a container.
const readOnlyPaths = `^/(` +
	`_ping|version|info|events|system/df|` +
	`containers/json|containers/[^/]+/(json|logs|top|stats|changes)|` +
	`images/json|images/search|images/[^/]+(/[^/]+)*/(json|history)|` +
	`networks|networks/[^/]+|volumes|volumes/[^/]+|` +
	`exec/[^/]+/json|plugins|plugins/[^/]+/json|` +
	`swarm|nodes|nodes/[^/]+|services|services/[^/]+|services/[^/]+/logs|tasks|tasks/[^/]+|tasks/[^/]+/logs|` +
	`secrets|secrets/[^/]+|configs|configs/[^/]+|distribution/.+/json` +
	`)/?$`

// rootOnHost says whether a write gives root on the host, and why.
func (r *Rules) rootOnHost(method, path string, c Call) (bool, string) {
	switch {
	case r.pluginChange.MatchString(path) || (method == "DELETE" && strings.HasPrefix(path, "/plugins/")):
		return true, "plugins run with the engine's privileges"
	case r.swarmChange.MatchString(path):
		return true, "it changes the swarm or its nodes"
	case r.containerCreate.MatchString(path):
		return bodyRisk(c, containerRisk)
	case r.execCreate.MatchString(path):
		return bodyRisk(c, execRisk)
	case r.volumeCreate.MatchString(path):
		return bodyRisk(c, volumeRisk)
	case r.serviceChange.MatchString(path):
		return bodyRisk(c, serviceRisk)
	}
	return false, ""
}

// bodyRisk judges a body with risk; a body that was not passed on, or
// does not parse, cannot be shown harmless.
func bodyRisk(c Call, risk func([]byte) (bool, string)) (bool, string) {
	if c.BodyTooLarge {
		return true, "its body was too large for the engine to pass on, so it cannot be checked"
	}
	if len(c.Body) == 0 {
		return false, ""
	}
	if !json.Valid(c.Body) {
		return true, "its body is not JSON, so it cannot be checked"
	}
	return risk(c.Body)
}

type hostConfig struct {
	Privileged   bool
	NetworkMode  string
	PidMode      string
	IpcMode      string
	UTSMode      string
	UsernsMode   string
	CgroupnsMode string
	Binds        []string
	Mounts       []struct{ Type string }
	Devices      []json.RawMessage
	CapAdd       []string
	SecurityOpt  []string
}

func containerRisk(body []byte) (bool, string) {
	var req struct{ HostConfig hostConfig }
	if err := json.Unmarshal(body, &req); err != nil {
		return true, "its body does not parse, so it cannot be checked"
	}
	return hostRisk(req.HostConfig)
}

func hostRisk(h hostConfig) (bool, string) {
	switch {
	case h.Privileged:
		return true, "a privileged container is root on the host"
	case h.NetworkMode == "host", h.PidMode == "host", h.IpcMode == "host", h.UTSMode == "host", h.UsernsMode == "host", h.CgroupnsMode == "host":
		return true, "it joins a namespace of the host"
	case len(h.Devices) > 0:
		return true, "it gets devices of the host"
	case len(h.CapAdd) > 0:
		return true, "it adds capabilities"
	}
	for _, b := range h.Binds {
		if src, _, _ := strings.Cut(b, ":"); strings.HasPrefix(src, "/") {
			return true, "it bind-mounts a path of the host"
		}
	}
	for _, m := range h.Mounts {
		if strings.EqualFold(m.Type, "bind") {
			return true, "it bind-mounts a path of the host"
		}
	}
	for _, o := range h.SecurityOpt {
		if strings.Contains(o, "unconfined") || o == "label=disable" || o == "label:disable" {
			return true, "it turns off a security profile (" + o + ")"
		}
	}
	return false, ""
}

func execRisk(body []byte) (bool, string) {
	var req struct{ Privileged bool }
	if err := json.Unmarshal(body, &req); err != nil {
		return true, "its body does not parse, so it cannot be checked"
	}
	if req.Privileged {
		return true, "a privileged exec is root on the host"
	}
	return false, ""
}

func volumeRisk(body []byte) (bool, string) {
	var req struct {
		Driver     string
		DriverOpts map[string]string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return true, "its body does not parse, so it cannot be checked"
	}
	if req.Driver != "" && req.Driver != "local" {
		return false, ""
	}
	for _, o := range strings.Split(req.DriverOpts["o"], ",") {
		if o == "bind" || o == "rbind" {
			return true, "a local volume with o=bind mounts a path of the host"
		}
	}
	if d := req.DriverOpts["device"]; d != "" && req.DriverOpts["type"] != "tmpfs" && req.DriverOpts["type"] != "nfs" && req.DriverOpts["type"] != "cifs" {
		return true, "a local volume of a device mounts the host's storage"
	}
	return false, ""
}

func serviceRisk(body []byte) (bool, string) {
	var req struct {
		TaskTemplate struct {
			ContainerSpec struct {
				Mounts        []struct{ Type string }
				CapabilityAdd []string
				Privileges    json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return true, "its body does not parse, so it cannot be checked"
	}
	cs := req.TaskTemplate.ContainerSpec
	for _, m := range cs.Mounts {
		if strings.EqualFold(m.Type, "bind") {
			return true, "its tasks bind-mount a path of the host"
		}
	}
	if len(cs.CapabilityAdd) > 0 {
		return true, "its tasks add capabilities"
	}
	return false, ""
}
