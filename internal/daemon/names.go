package daemon

import (
	"crypto/rand"
	"math/big"
)

// Docker names unnamed containers adjective_surname; cnet does the same with its own lists so
// that `ps` stays readable without --name.
var (
	adjectives = []string{"agile", "bold", "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "keen",
		"lucid", "merry", "nimble", "quiet", "rapid", "serene", "sharp", "steady", "vivid", "zen"}
	surnames = []string{"babbage", "cerf", "dijkstra", "hopper", "kahn", "knuth", "lamport", "liskov", "lovelace", "metcalfe",
		"perlman", "postel", "ritchie", "shannon", "thompson", "torvalds", "turing", "wing", "wirth", "yonath"}
)

func randomName() string {
	return pick(adjectives) + "_" + pick(surnames)
}

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		return list[0]
	}
	return list[n.Int64()]
}
