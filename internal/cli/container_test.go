package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
)

var psNow = time.Date(2021, 6, 25, 12, 0, 0, 0, time.UTC)

func testContainers() []api.ContainerSummary {
	ago := func(d time.Duration) int64 { return psNow.Add(-d).Unix() }
	return []api.ContainerSummary{
		{ID: "2411f635aaef7a70caa0a09ee14289c48de71187ef375dda84d29219c5b56737", Names: []string{"/pf-nasa-web"},
			Command: "httpd-foreground --with-a-long-flag", Created: ago(7 * time.Second), State: "running", Status: "Up 6 seconds",
			Ports:           []api.Port{{IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, {IP: "::", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}},
			NetworkSettings: &api.SummaryNetworkSettings{Networks: map[string]*api.EndpointSettings{"bridge": {}, "localnet": {}}}},
		{ID: "9e8f15588f0fcd8920720af6446adfa59f21cd1c15c057518b874b89b077db4d", Names: []string{"/link-nasa", "/other/web"},
			Image: "/srv/centos", Command: "/bin/bash", Created: ago(90 * time.Second), State: "running", Status: "Up About a minute"},
		{ID: "32d0528aa4e4c07679ceb59b975a8f5e9fe02a65f26fc7a54701ca50ad8b8861", Names: []string{"/nasa1"},
			Command: "sh -c 'exit 3'", Created: ago(3 * time.Hour), State: "exited", Status: "Exited (3) 2 hours ago",
			Labels: map[string]string{"b": "2", "a": "1"}},
	}
}

func TestPsOutput(t *testing.T) {
	tests := []struct {
		name string
		opts psOptions
		want string
	}{
		{"default table", psOptions{}, "" +
			"CONTAINER ID   IMAGE         COMMAND                  CREATED              STATUS                   PORTS                                   NAMES\n" +
			"2411f635aaef                 \"httpd-foreground --…\"   7 seconds ago        Up 6 seconds             0.0.0.0:8080->80/tcp, :::8080->80/tcp   pf-nasa-web\n" +
			"9e8f15588f0f   /srv/centos   \"/bin/bash\"              About a minute ago   Up About a minute                                                link-nasa\n" +
			"32d0528aa4e4                 \"sh -c 'exit 3'\"         3 hours ago          Exited (3) 2 hours ago                                           nasa1\n"},
		{"quiet", psOptions{quiet: true}, "2411f635aaef\n9e8f15588f0f\n32d0528aa4e4\n"},
		{"no-trunc", psOptions{noTrunc: true, format: "{{.ID}} {{.Command}} {{.Names}}"}, "" +
			"2411f635aaef7a70caa0a09ee14289c48de71187ef375dda84d29219c5b56737 \"httpd-foreground --with-a-long-flag\" pf-nasa-web\n" +
			"9e8f15588f0fcd8920720af6446adfa59f21cd1c15c057518b874b89b077db4d \"/bin/bash\" link-nasa,other/web\n" +
			"32d0528aa4e4c07679ceb59b975a8f5e9fe02a65f26fc7a54701ca50ad8b8861 \"sh -c 'exit 3'\" nasa1\n"},
		{"custom table", psOptions{format: `table {{.Names}}\t{{.State}}\t{{.Networks}}\t{{.Labels}}\t{{.Label "a"}}`}, "" +
			"NAMES         STATE     NETWORKS          LABELS    a\n" +
			"pf-nasa-web   running   bridge,localnet             \n" +
			"link-nasa     running                               \n" +
			"nasa1         exited                      a=1,b=2   1\n"},
		{"json", psOptions{format: "json", quiet: true}, "" +
			`{"Command":"\"httpd-foreground --…\"","CreatedAt":"` + time.Unix(psNow.Unix()-7, 0).String() + `","ID":"2411f635aaef","Image":"","Labels":"","Names":"pf-nasa-web","Networks":"bridge,localnet","Ports":"0.0.0.0:8080-\u003e80/tcp, :::8080-\u003e80/tcp","RunningFor":"7 seconds ago","State":"running","Status":"Up 6 seconds"}` + "\n" +
			`{"Command":"\"/bin/bash\"","CreatedAt":"` + time.Unix(psNow.Unix()-90, 0).String() + `","ID":"9e8f15588f0f","Image":"/srv/centos","Labels":"","Names":"link-nasa","Networks":"","Ports":"","RunningFor":"About a minute ago","State":"running","Status":"Up About a minute"}` + "\n" +
			`{"Command":"\"sh -c 'exit 3'\"","CreatedAt":"` + time.Unix(psNow.Unix()-3*3600, 0).String() + `","ID":"32d0528aa4e4","Image":"","Labels":"a=1,b=2","Names":"nasa1","Networks":"","Ports":"","RunningFor":"3 hours ago","State":"exited","Status":"Exited (3) 2 hours ago"}` + "\n"},
		{"empty", psOptions{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := testContainers()
			if tt.name == "empty" {
				list = nil
				tt.want = "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
			}
			var out bytes.Buffer
			if err := writeContainers(&out, tt.opts, list, psNow); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestRunningFor(t *testing.T) {
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{0, "Less than a second ago"},
		{time.Second, "1 second ago"},
		{59 * time.Second, "59 seconds ago"},
		{60 * time.Second, "About a minute ago"},
		{5 * time.Minute, "5 minutes ago"},
		{61 * time.Minute, "About an hour ago"},
		{47 * time.Hour, "47 hours ago"},
		{3 * 24 * time.Hour, "3 days ago"},
		{3 * 7 * 24 * time.Hour, "3 weeks ago"},
	}
	for _, tt := range tests {
		r := containerRow{c: api.ContainerSummary{Created: psNow.Add(-tt.ago).Unix()}, now: psNow}
		if got := r.RunningFor(); got != tt.want {
			t.Errorf("%v: got %q, want %q", tt.ago, got, tt.want)
		}
	}
}

func TestFormatPorts(t *testing.T) {
	tests := []struct {
		ports []api.Port
		want  string
	}{
		{nil, ""},
		{[]api.Port{{PrivatePort: 80, Type: "tcp"}}, "80/tcp"},
		{[]api.Port{{PrivatePort: 53, Type: "udp"}, {IP: "0.0.0.0", PrivatePort: 53, PublicPort: 5353, Type: "tcp"}}, "0.0.0.0:5353->53/tcp, 53/udp"},
		{[]api.Port{
			{IP: "0.0.0.0", PrivatePort: 8002, PublicPort: 9002, Type: "tcp"},
			{IP: "0.0.0.0", PrivatePort: 8000, PublicPort: 9000, Type: "tcp"},
			{IP: "0.0.0.0", PrivatePort: 8001, PublicPort: 9001, Type: "tcp"},
			{IP: "0.0.0.0", PrivatePort: 8010, PublicPort: 9010, Type: "tcp"},
		}, "0.0.0.0:9000-9002->8000-8002/tcp, 0.0.0.0:9010->8010/tcp"},
		{[]api.Port{{PrivatePort: 7000, Type: "tcp"}, {PrivatePort: 7001, Type: "tcp"}}, "7000-7001/tcp"},
	}
	for _, tt := range tests {
		if got := formatPorts(tt.ports); got != tt.want {
			t.Errorf("formatPorts(%v) = %q, want %q", tt.ports, got, tt.want)
		}
	}
}

func TestEllipsis(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"/bin/bash", 20, "/bin/bash"},
		{"exactly-twenty-chars", 20, "exactly-twenty-chars"},
		{"twenty-one characters", 20, "twenty-one characte…"},
		{"한글로 된 아주 긴 명령어 이름입니다 정말로", 10, "한글로 된 아주 …"},
	}
	for _, tt := range tests {
		if got := ellipsis(tt.in, tt.n); got != tt.want {
			t.Errorf("ellipsis(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestNaturalLess(t *testing.T) {
	ordered := []string{"a", "a1", "a2", "a10", "a-", "b", "net", "net2", "net02", "net3", "net10", "net10a", "netb"}
	for i := range ordered {
		for j := range ordered {
			if got := naturalLess(ordered[i], ordered[j]); got != (i < j) {
				t.Errorf("naturalLess(%q, %q) = %v", ordered[i], ordered[j], got)
			}
		}
	}
}
