package dockerplugin

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
)

// Option keys dockerd uses in the Options maps (moby daemon/libnetwork/netlabel/labels.go).
const (
	portMapKey = "com.docker.network.portmap"
	genericKey = "com.docker.network.generic"
)

// PortBinding is one published port of a container (`-p HOSTIP:HOSTPORT:PORT/PROTO`).
type PortBinding struct {
	// Proto is "tcp", "udp" or "sctp".
	Proto         string
	ContainerPort uint16
	// HostIP is empty when no host address was given (every address).
	HostIP string
	// HostPort is 0 when the host port is to be chosen (`-p 80` or -P); HostPortEnd is the
	// last port of a range (`-p 8000-8010:80`), and equals HostPort for a single port.
	HostPort, HostPortEnd uint16
}

// wirePortBinding is libnetwork's types.PortBinding as encoding/json writes it: Proto is the
// IP protocol number, IP and HostIP are net.IP as text ("" when unset), ports are numbers. IP
// (the container's address) is not sent by dockerd when it builds the sandbox's options.
type wirePortBinding struct {
	Proto       int
	IP          string
	Port        int
	HostIP      string
	HostPort    int
	HostPortEnd int
}

// protocols maps the IP protocol numbers dockerd sends (6, 17, 132) to their names.
var protocols = map[int]string{6: "tcp", 17: "udp", 132: "sctp"}

// PortBindings decodes the published ports in a Join's or ProgramExternalConnectivity's
// options: Options["com.docker.network.portmap"], a list of libnetwork PortBindings that
// dockerd builds from the container's -p and -P. A missing or null entry means no ports.
// A bad entry is an error rather than a skipped port, because publishing fewer ports than
// the user asked for would fail silently.
func PortBindings(options map[string]any) ([]PortBinding, error) {
	v, ok := options[portMapKey]
	if !ok || v == nil {
		return nil, nil
	}
	// The value went through encoding/json once already (as []any of map[string]any with
	// float64 numbers); encoding it again and decoding into the wire type checks the types
	// and refuses fractional or out-of-range numbers in one step.
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", portMapKey, err)
	}
	var wire []wirePortBinding
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, fmt.Errorf("%s: want a list of port bindings: %w", portMapKey, err)
	}
	out := make([]PortBinding, 0, len(wire))
	for i, w := range wire {
		pb, err := w.decode()
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", portMapKey, i, err)
		}
		out = append(out, pb)
	}
	return out, nil
}

func (w wirePortBinding) decode() (PortBinding, error) {
	proto, ok := protocols[w.Proto]
	if !ok {
		return PortBinding{}, fmt.Errorf("protocol %d is not tcp (6), udp (17) or sctp (132)", w.Proto)
	}
	if w.Port < 1 || w.Port > 65535 {
		return PortBinding{}, fmt.Errorf("container port %d is not in 1-65535", w.Port)
	}
	if w.HostPort < 0 || w.HostPort > 65535 {
		return PortBinding{}, fmt.Errorf("host port %d is not in 0-65535", w.HostPort)
	}
	if w.HostPortEnd < 0 || w.HostPortEnd > 65535 {
		return PortBinding{}, fmt.Errorf("host port range end %d is not in 0-65535", w.HostPortEnd)
	}
	// HostPortEnd 0 is a single port, as libnetwork's own PortBinding.String reads it;
	// dockerd itself sends HostPortEnd == HostPort.
	end := w.HostPortEnd
	if end == 0 {
		end = w.HostPort
	}
	if w.HostPort == 0 && end != 0 {
		return PortBinding{}, fmt.Errorf("host port range end %d without a start", end)
	}
	if end < w.HostPort {
		return PortBinding{}, fmt.Errorf("host port range %d-%d ends before it starts", w.HostPort, end)
	}
	if w.HostIP != "" {
		if _, err := netip.ParseAddr(w.HostIP); err != nil {
			return PortBinding{}, fmt.Errorf("host IP: %w", err)
		}
	}
	return PortBinding{
		Proto:         proto,
		ContainerPort: uint16(w.Port),
		HostIP:        w.HostIP,
		HostPort:      uint16(w.HostPort),
		HostPortEnd:   uint16(end),
	}, nil
}

// GenericOptions returns the driver options of `docker network create -o KEY=VAL`, which
// dockerd sends in a CreateNetwork's Options["com.docker.network.generic"] as an object of
// strings. Other JSON values are turned into their text (true, 1500, or the JSON of an object
// or list) so that a caller parses every option the same way whatever sent it. A missing
// entry, or one that is not an object, yields nil.
func GenericOptions(options map[string]any) map[string]string {
	var m map[string]any
	switch v := options[genericKey].(type) {
	case map[string]any:
		m = v
	case map[string]string: // built in Go rather than decoded
		return maps.Clone(v)
	default:
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = stringify(v)
	}
	return out
}

func stringify(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}
