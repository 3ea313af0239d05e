package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadDatabase(t *testing.T) {
	const (
		app   = "postgres://bitvault_app:s3cret@db:5432/bitvault"
		owner = "postgres://bitvault_owner:0wner-s3cret@db:5432/bitvault"
	)
	tests := []struct {
		name    string
		env     map[string]string
		use     DatabaseUse
		want    Database
		wantErr []string // substrings; empty means no error
	}{
		{name: "serve with app URL", env: map[string]string{EnvDatabaseURL: app}, want: Database{Enabled: true, URL: app, Wait: 30 * time.Second}},
		{
			name: "serve with both URLs and a wait",
			env:  map[string]string{EnvDB: "postgres", EnvDatabaseURL: app, EnvDatabaseOwnerURL: owner, EnvDatabaseWait: "5s"},
			want: Database{Enabled: true, URL: app, OwnerURL: owner, Wait: 5 * time.Second},
		},
		{name: "explicitly none", env: map[string]string{EnvDB: "none"}, want: Database{Wait: 30 * time.Second}},
		{name: "migrate needs only the owner", env: map[string]string{EnvDatabaseOwnerURL: owner}, use: ForMigrate, want: Database{Enabled: true, OwnerURL: owner, Wait: 30 * time.Second}},
		{name: "missing app URL", env: map[string]string{}, wantErr: []string{EnvDatabaseURL + " is required", EnvDB + "=none"}},
		{name: "migrate without owner URL", env: map[string]string{EnvDatabaseURL: app}, use: ForMigrate, wantErr: []string{EnvDatabaseOwnerURL + " is required"}},
		{name: "migrate with none", env: map[string]string{EnvDB: "none"}, use: ForMigrate, wantErr: []string{"no database to migrate"}},
		{name: "none contradicts a URL", env: map[string]string{EnvDB: "none", EnvDatabaseURL: app}, wantErr: []string{EnvDB + "=none but"}},
		{name: "unknown mode", env: map[string]string{EnvDB: "sqlite"}, wantErr: []string{EnvDB, "postgres or none"}},
		{name: "invalid URL", env: map[string]string{EnvDatabaseURL: "postgres://u:pw@host:notaport/db"}, wantErr: []string{EnvDatabaseURL, "not a valid"}},
		{name: "same role twice", env: map[string]string{EnvDatabaseURL: app, EnvDatabaseOwnerURL: "postgres://bitvault_app:x@db/bitvault"}, wantErr: []string{"both use role \"bitvault_app\""}},
		{name: "bad wait", env: map[string]string{EnvDatabaseURL: app, EnvDatabaseWait: "soon"}, wantErr: []string{EnvDatabaseWait}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadDatabase(env(tt.env), tt.use)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				for _, secret := range []string{"s3cret", "pw@"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q leaks a password", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if strings.Contains(got.String(), "s3cret") {
				t.Errorf("String() = %q leaks a password", got.String())
			}
		})
	}
}
