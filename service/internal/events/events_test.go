package events

import (
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	c, err := LoadConfig(env())
	if err != nil || c.Profile != ProfileLite || c.MaxLag != 5*time.Minute {
		t.Fatalf("default = %+v %v", c, err)
	}
	c, err = LoadConfig(env(EnvProfile, "standard", EnvNATSURL, "nats://x:4222", EnvMaxLag, "30s"))
	if err != nil || c.Profile != ProfileStd || c.NATSURL != "nats://x:4222" || c.MaxLag != 30*time.Second {
		t.Fatalf("standard = %+v %v", c, err)
	}
	for _, bad := range [][]string{{EnvProfile, "heavy"}, {EnvProfile, "standard"}, {EnvMaxLag, "soon"}, {EnvMaxLag, "-1s"}} {
		if _, err := LoadConfig(env(bad...)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
