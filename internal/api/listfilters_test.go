package api

import (
	"strings"
	"testing"
)

func TestFilterContainers(t *testing.T) {
	list := []ContainerSummary{
		{ID: "aaa111", Names: []string{"/web"}, Image: "busybox:latest", ImageID: "sha256:beef01", State: "running", Status: "Up 2 seconds",
			Labels: map[string]string{"tier": "fe"}, Ports: []Port{{PrivatePort: 80, PublicPort: 8080, Type: "tcp"}},
			NetworkSettings: &SummaryNetworkSettings{Networks: map[string]*EndpointSettings{"front": {NetworkID: "net999"}}}},
		{ID: "bbb222", Names: []string{"/job"}, Image: "alpine", State: "exited", Status: "Exited (3) 1 minute ago",
			Labels: map[string]string{}, Ports: []Port{{PrivatePort: 53, Type: "udp"}},
			NetworkSettings: &SummaryNetworkSettings{Networks: map[string]*EndpointSettings{"back": {NetworkID: "net888"}}}},
	}
	for _, tt := range []struct {
		f    Filters
		want string
	}{
		{Filters{}, "web job"},
		{Filters{"name": {"^we"}}, "web"},
		{Filters{"name": {"o"}}, "job"},
		{Filters{"id": {"bbb"}}, "job"},
		{Filters{"label": {"tier=fe"}}, "web"},
		{Filters{"label!": {"tier"}}, "job"},
		{Filters{"network": {"front"}}, "web"},
		{Filters{"network": {"net8"}}, "job"},
		{Filters{"status": {"exited"}}, "job"},
		{Filters{"status": {"running", "exited"}}, "web job"},
		{Filters{"ancestor": {"busybox"}}, "web"},
		{Filters{"ancestor": {"beef"}}, "web"},
		{Filters{"exited": {"3"}}, "job"},
		{Filters{"exited": {"0"}}, ""},
		{Filters{"publish": {"8080"}}, "web"},
		{Filters{"publish": {"80"}}, ""},
		{Filters{"publish": {"53/udp"}}, ""},
		{Filters{"expose": {"53/udp"}}, "job"},
		{Filters{"expose": {"80"}}, "web"},
		{Filters{"publish": {"8080"}, "expose": {"53/udp"}}, "web job"},
	} {
		got, err := filterContainers(tt.f, list)
		if err != nil {
			t.Errorf("%v: %v", tt.f, err)
			continue
		}
		var names []string
		for _, c := range got {
			names = append(names, strings.TrimPrefix(c.Names[0], "/"))
		}
		if strings.Join(names, " ") != tt.want {
			t.Errorf("%v: %q, want %q", tt.f, strings.Join(names, " "), tt.want)
		}
	}
	for _, bad := range []Filters{{"status": {"sleeping"}}, {"exited": {"x"}}, {"colour": {"red"}}} {
		if _, err := filterContainers(bad, list); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestFilterNetworksDangling(t *testing.T) {
	nets := []Network{{Name: "bridge", ID: "b1"}, {Name: "used", ID: "u1"}, {Name: "idle", ID: "i1"}}
	count := func(n Network) (int, bool) { return map[string]int{"used": 1}[n.Name], true }
	for _, tt := range []struct {
		v, want string
	}{{"true", "idle"}, {"false", "bridge used"}} {
		got, err := FilterNetworks(Filters{"dangling": {tt.v}}, nets, count)
		var names []string
		for _, n := range got {
			names = append(names, n.Name)
		}
		if err != nil || strings.Join(names, " ") != tt.want {
			t.Errorf("dangling=%s: %v %v, want %s", tt.v, names, err, tt.want)
		}
	}
}

func TestFilterImages(t *testing.T) {
	list := []ImageSummary{
		{ID: "1", RepoTags: []string{"busybox:latest", "me/bb:1"}, Labels: map[string]string{"k": "v"}},
		{ID: "2", RepoTags: []string{}},
		{ID: "3", RepoTags: []string{"alpine:3"}},
	}
	for _, tt := range []struct {
		f    Filters
		want string
	}{
		{Filters{}, "1 2 3"},
		{Filters{"dangling": {"true"}}, "2"},
		{Filters{"dangling": {"false"}}, "1 3"},
		{Filters{"reference": {"busybox"}}, "1"},
		{Filters{"reference": {"me/*"}}, "1"},
		{Filters{"reference": {"*:3"}}, "3"},
		{Filters{"label": {"k=v"}}, "1"},
	} {
		got, err := FilterImages(tt.f, list)
		var ids []string
		for _, i := range got {
			ids = append(ids, i.ID)
		}
		if err != nil || strings.Join(ids, " ") != tt.want {
			t.Errorf("%v: %v %v, want %s", tt.f, ids, err, tt.want)
		}
	}
}
