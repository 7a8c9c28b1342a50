package module

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// adapt runs the Caddyfile adapter on src (named "Caddyfile").
func adapt(t *testing.T, src string) (map[string]any, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, nil
}

func hookgateApp(t *testing.T, cfg map[string]any) string {
	t.Helper()
	app := cfg["apps"].(map[string]any)["hookgate"]
	b, _ := json.Marshal(app)
	return string(b)
}

// canonical re-marshals a JSON document with sorted keys.
func canonical(t *testing.T, doc string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAdaptGlobalOption(t *testing.T) {
	tests := []struct {
		name, option, want string
	}{
		{"embedded defaults", `hookgate`, `{}`},
		{"storage and sync", `hookgate {
	storage_dir /var/lib/hookgate
	sync always
}`, `{"storage_dir":"/var/lib/hookgate","sync":"always"}`},
		{"cluster", `hookgate {
	nats nats://n1:4222 nats://n2:4222 {
		creds /etc/hookgate.creds
		tls {
			ca /etc/ca.pem
			cert /etc/c.pem
			key /etc/k.pem
		}
		replicas 3
		connect_timeout 5s
	}
}`, `{"nats":{"urls":["nats://n1:4222","nats://n2:4222"],"creds":"/etc/hookgate.creds","tls":{"ca":"/etc/ca.pem","cert":"/etc/c.pem","key":"/etc/k.pem"},"replicas":3,"connect_timeout":5000000000}}`},
		{"limits", `hookgate {
	allow_targets 127.0.0.1/32 10.0.0.0/8
	dedupe_window 1h
	retention 72h
	concurrency 32
	per_destination 8
}`, `{"allow_targets":["127.0.0.1/32","10.0.0.0/8"],"dedupe_window":3600000000000,"retention":259200000000000,"concurrency":32,"per_destination":8}`},
		{"topic and subscription", `hookgate {
	allow_targets 127.0.0.1/32
	topic document.deleted {
		description An asset was deleted
	}
	subscription dam-sync {
		topics document.* asset.created
		url http://127.0.0.1:9000/hook
		secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
		header X-Tenant ZZ1
		include ` + "`tenant == \"ZZ1\"`" + `
		envelope orangelogic
		max_attempts 6
		retry_schedule 1s 5s
		timeout 3s
	}
}`, `{"allow_targets":["127.0.0.1/32"],"topics":[{"name":"document.deleted","description":"An asset was deleted"}],"subscriptions":[{"id":"","name":"dam-sync","topics":["document.*","asset.created"],"url":"http://127.0.0.1:9000/hook","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","headers":{"X-Tenant":"ZZ1"},"include":"tenant == \"ZZ1\"","envelope":"orangelogic","max_attempts":6,"retry_schedule":["1s","5s"],"timeout":"3s"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := adapt(t, "{\n"+tc.option+"\n}\n:8080 {\n\trespond 200\n}\n")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := hookgateApp(t, cfg), canonical(t, tc.want); got != want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAdaptGlobalOptionErrors(t *testing.T) {
	tests := []struct {
		name, option, want string
	}{
		{"unknown option", "hookgate {\n\tstorage /x\n}", `unrecognized hookgate option "storage", at Caddyfile:3`},
		{"bad sync", "hookgate {\n\tsync sometimes\n}", `sync: "sometimes" is not one of always, interval, at Caddyfile:3`},
		{"nats without url", "hookgate {\n\tnats\n}", `wrong argument count`},
		{"bad replicas", "hookgate {\n\tnats nats://a:4222 {\n\t\treplicas 2\n\t}\n}", `replicas: 2; use 1, 3 or 5, at Caddyfile:4`},
		{"unknown nats option", "hookgate {\n\tnats nats://a:4222 {\n\t\tuser x\n\t}\n}", `unrecognized nats option "user", at Caddyfile:4`},
		{"bad duration", "hookgate {\n\tretention forever\n}", `retention: "forever" is not a positive duration, at Caddyfile:3`},
		{"bad concurrency", "hookgate {\n\tconcurrency -1\n}", `concurrency: "-1" is not a positive whole number, at Caddyfile:3`},
		{"subscription bad include", "hookgate {\n\tsubscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tinclude `topic +`\n\t}\n}", `subscription "s": include:`},
		{"subscription include line", "hookgate {\n\tsubscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tinclude `topic +`\n\t}\n}", `at Caddyfile:6`},
		{"subscription without topics", "hookgate {\n\tsubscription s {\n\t\turl http://example.com/\n\t}\n}", `topics: at least one topic`},
		{"declared twice", "hookgate\nhookgate", `declared twice`},
		{"missing topic schema line", "hookgate {\n\ttopic t {\n\t\tschema /nonexistent/schema.json\n\t\tdescription d\n\t}\n}", `topic "t": schema: open /nonexistent/schema.json: no such file or directory, at Caddyfile:4`},
		// Issue #8: bounds and hostile values, at their line.
		{"max_attempts over bound", "hookgate {\n\tsubscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tmax_attempts 1000000000\n\t}\n}", `max_attempts: 1000000000 is over the maximum of 100, at Caddyfile:6`},
		{"subscription timeout over bound", "hookgate {\n\tsubscription s {\n\t\ttimeout 100000h\n\t}\n}", `timeout: 100000h is over the maximum of 5m0s, at Caddyfile:4`},
		{"subscription header CRLF", "hookgate {\n\tsubscription s {\n\t\theader Authorization `Bearer x\ny`\n\t}\n}", `control character '\n', at Caddyfile:4`},
		{"non-boolean include", "hookgate {\n\tsubscription s {\n\t\ttopics a\n\t\turl http://example.com/\n\t\tinclude `data.enabled`\n\t}\n}", `include: predicate "data.enabled": the result must be boolean`},
		{"disallowed subscription url", "hookgate {\n\tsubscription s {\n\t\ttopics a\n\t\turl http://192.168.1.1/\n\t}\n}", `subscription "s": url: netguard: address 192.168.1.1 is not allowed: private`},
		{"disallowed subscription url line", "hookgate {\n\tsubscription s {\n\t\ttopics a\n\t\turl http://192.168.1.1/\n\t}\n}", `at Caddyfile:5`},
		{"dedupe_window over bound", "hookgate {\n\tdedupe_window 1000h\n}", `dedupe_window: 1000h is over the maximum of 168h0m0s, at Caddyfile:3`},
		{"retention over bound", "hookgate {\n\tretention 10000h\n}", `retention: 10000h is over the maximum of 8784h0m0s, at Caddyfile:3`},
		{"concurrency over bound", "hookgate {\n\tconcurrency 100000\n}", `concurrency: 100000 is over the maximum of 4096, at Caddyfile:3`},
		{"per_destination over bound", "hookgate {\n\tper_destination 5000\n}", `per_destination: 5000 is over the maximum of 1024, at Caddyfile:3`},
		{"connect_timeout over bound", "hookgate {\n\tnats nats://a:4222 {\n\t\tconnect_timeout 1h\n\t}\n}", `connect_timeout: 1h is over the maximum of 5m0s, at Caddyfile:4`},
		{"bad allow_targets", "hookgate {\n\tallow_targets 10.0.0.0/33\n}", `allow_targets: `},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, "{\n"+tc.option+"\n}\n:8080 {\n\trespond 200\n}\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAdaptDirectives(t *testing.T) {
	src := `{
	hookgate {
		allow_targets 127.0.0.1/32
	}
}

:8080 {
	hookgate_ingress /in/* {
		workflow provisioning {
			sample ../examples/easylife/groupcreated.json
			strict
			filter ` + "`body.eventType == \"groupcreated\"`" + `
			key {env.PROVISIONING_KEY}
			grace 1h
			idempotency_header X-Request-Id
			max_body 64KiB
			methods POST PUT
			verify stripe {env.STRIPE_SECRET} {
				secret {env.STRIPE_PREVIOUS_SECRET}
				tolerance 10m
			}
			forward http://127.0.0.1:3000/provisioned {
				id crm
				method PUT
				header X-Source hookgate
				timeout 5s
				retry_schedule 1s 10s
				secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
				envelope standard
			}
		}
	}
	hookgate_api /admin/* {
		token {env.HOOKGATE_TOKEN}
		token_file /etc/hookgate/token
		publish_token {env.PUBLISH_TOKEN}
	}
	reverse_proxy 127.0.0.1:3000
}`
	cfg, err := adapt(t, src)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg["apps"].(map[string]any)["http"])
	s := string(b)
	for _, want := range []string{
		`"handler":"hookgate_ingress","prefix":"/in","workflows":[{"filter":"body.eventType == \"groupcreated\"","grace":"1h0m0s","id":"provisioning","idempotency_header":"X-Request-Id","key":"{env.PROVISIONING_KEY}","max_body":65536,"methods":["POST","PUT"],"sample_file":"../examples/easylife/groupcreated.json","strict":true,"targets":[{"envelope":"standard","headers":{"X-Source":"hookgate"},"id":"crm","method":"PUT","retry_schedule":["1s","10s"],"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","timeout":"5s","url":"http://127.0.0.1:3000/provisioned"}],"verify":{"provider":"stripe","secrets":["{env.STRIPE_SECRET}","{env.STRIPE_PREVIOUS_SECRET}"],"tolerance":"10m0s"}}]`,
		`"handler":"hookgate_api","prefix":"/admin","publish_tokens":["{env.PUBLISH_TOKEN}"],"token_files":["/etc/hookgate/token"],"tokens":["{env.HOOKGATE_TOKEN}"]`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("adapted config lacks\n%s\nin\n%s", want, s)
		}
	}
	// The handlers come before reverse_proxy.
	if strings.Index(s, "hookgate_ingress") > strings.Index(s, "reverse_proxy") {
		t.Error("hookgate_ingress must be ordered before reverse_proxy")
	}
}

func TestAdaptDirectiveErrors(t *testing.T) {
	tests := []struct {
		name, site, want string
	}{
		{"bad filter names line", "hookgate_ingress {\n\tworkflow w {\n\t\tsample ../examples/easylife/groupcreated.json\n\t\tfilter `body.eventType ==`\n\t}\n}", `workflow "w": filter "body.eventType ==": unexpected token EOF`},
		{"bad filter line number", "hookgate_ingress {\n\tworkflow w {\n\t\tsample ../examples/easylife/groupcreated.json\n\t\tfilter `body.eventType ==`\n\t}\n}", `at Caddyfile:5`},
		{"non-boolean filter", "hookgate_ingress {\n\tworkflow w {\n\t\tfilter `1 + 1`\n\t}\n}", `expected bool`},
		{"missing sample file", "hookgate_ingress {\n\tworkflow w {\n\t\tsample /nonexistent/sample.json\n\t}\n}", `sample: open /nonexistent/sample.json`},
		{"sample and schema", "hookgate_ingress {\n\tworkflow w {\n\t\tsample ../examples/easylife/groupcreated.json\n\t\tschema ../examples/phrase/job-schema.json\n\t}\n}", `a workflow has a sample or a schema, not both`},
		{"bad workflow id", "hookgate_ingress {\n\tworkflow a.b\n}", `"a.b" must be 1 to 128 letters`},
		{"unknown workflow option", "hookgate_ingress {\n\tworkflow w {\n\t\tfliter x\n\t}\n}", `unrecognized workflow option "fliter", at Caddyfile:4`},
		{"bad size", "hookgate_ingress {\n\tworkflow w {\n\t\tmax_body lots\n\t}\n}", `max_body: "lots" is not a size`},
		{"max_body over the ceiling", "hookgate_ingress {\n\tworkflow w {\n\t\tmax_body 200GB\n\t}\n}", `max_body: 200GB is over the ceiling of 64MiB, at Caddyfile:4`},
		{"filter nested too deep", "hookgate_ingress {\n\tworkflow w {\n\t\tfilter `" + strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100) + "`\n\t}\n}", `expression_depth bound of 64`},
		{"bad envelope", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\tenvelope `{a:`\n\t\t}\n\t}\n}", `targets[0].envelope`},
		// Issue #8: hostile configuration is a load error at its line.
		{"non-boolean body filter", "hookgate_ingress {\n\tworkflow w {\n\t\tsample ../examples/easylife/groupcreated.json\n\t\tfilter `body.eventType`\n\t}\n}", `filter "body.eventType": the result must be boolean`},
		{"non-boolean body filter line", "hookgate_ingress {\n\tworkflow w {\n\t\tsample ../examples/easylife/groupcreated.json\n\t\tfilter `body.eventType`\n\t}\n}", `at Caddyfile:5`},
		{"missing sample file line", "hookgate_ingress {\n\tworkflow w {\n\t\tsample /nonexistent/sample.json\n\t\tstrict\n\t}\n}", `at Caddyfile:4`},
		{"disallowed target line", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://127.0.0.1:1/ok\n\t\tforward http://10.0.0.1/x\n\t}\n}", `targets[0].url`},
		{"disallowed target names its line", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ok\n\t\tforward http://10.0.0.1/x\n\t}\n}", `targets[1].url: netguard: address 10.0.0.1 is not allowed: private`},
		{"disallowed target line number", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ok\n\t\tforward http://10.0.0.1/x\n\t}\n}", `at Caddyfile:5`},
		{"bad target URL line", "hookgate_ingress {\n\tworkflow w {\n\t\tforward ftp://example.com/x {\n\t\t\ttimeout 5s\n\t\t}\n\t}\n}", `scheme "ftp" is not allowed (want http or https), at Caddyfile:4`},
		{"header CRLF", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\theader X-A `a\r\nb`\n\t\t}\n\t}\n}", `header: header X-A: value contains the control character '\r', at Caddyfile:5`},
		{"header name with space", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\theader \"X A\" v\n\t\t}\n\t}\n}", `not allowed in a header name, at Caddyfile:5`},
		{"reserved header", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\theader Content-Length 1\n\t\t}\n\t}\n}", `set by hookgate and cannot be configured, at Caddyfile:5`},
		{"timeout over bound", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\ttimeout 100000h\n\t\t}\n\t}\n}", `timeout: 100000h is over the maximum of 5m0s, at Caddyfile:5`},
		{"retry wait over bound", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/ {\n\t\t\tretry_schedule 1s 25h\n\t\t}\n\t}\n}", `retry_schedule: 25h is over the maximum of 24h0m0s, at Caddyfile:5`},
		{"grace over bound", "hookgate_ingress {\n\tworkflow w {\n\t\tgrace 1000h\n\t}\n}", `grace: 1000h is over the maximum of 168h0m0s, at Caddyfile:4`},
		{"idempotency header with space", "hookgate_ingress {\n\tworkflow w {\n\t\tidempotency_header \"X Request\"\n\t}\n}", `idempotency_header: header name "X Request"`},
		{"unknown verify provider", "hookgate_ingress {\n\tworkflow w {\n\t\tverify bitbucket s\n\t}\n}", `verify: unknown provider "bitbucket": use one of github, gitlab, stripe, shopify, slack, twilio, zoom, paddle, standard, at Caddyfile:4`},
		{"verify without secret", "hookgate_ingress {\n\tworkflow w {\n\t\tverify github\n\t}\n}", `wrong argument count or unexpected line ending after 'github', at Caddyfile:4`},
		{"old verify_hmac", "hookgate_ingress {\n\tworkflow w {\n\t\tverify_hmac X-Hub-Signature-256 s\n\t}\n}", `unrecognized workflow option "verify_hmac", at Caddyfile:4`},
		{"verify twice", "hookgate_ingress {\n\tworkflow w {\n\t\tverify github s\n\t\tverify gitlab t\n\t}\n}", `verify is given twice: one provider per workflow (more secrets go in its block), at Caddyfile:5`},
		{"tolerance without timestamp", "hookgate_ingress {\n\tworkflow w {\n\t\tverify github s {\n\t\t\ttolerance 1m\n\t\t}\n\t}\n}", `verify: github signatures carry no timestamp: tolerance does not apply, at Caddyfile:5`},
		{"tolerance over bound", "hookgate_ingress {\n\tworkflow w {\n\t\tverify slack s {\n\t\t\ttolerance 2h\n\t\t}\n\t}\n}", `tolerance: 2h is over the maximum of 1h0m0s, at Caddyfile:5`},
		{"too many verify secrets", "hookgate_ingress {\n\tworkflow w {\n\t\tverify github a {\n\t\t\tsecret b\n\t\t\tsecret c\n\t\t\tsecret d\n\t\t\tsecret e\n\t\t}\n\t}\n}", `verify: more than 4 secrets, at Caddyfile:8`},
		{"unknown verify option", "hookgate_ingress {\n\tworkflow w {\n\t\tverify github a {\n\t\t\theader X\n\t\t}\n\t}\n}", `unrecognized verify option "header", at Caddyfile:5`},
		{"bad standard secret line", "hookgate_ingress {\n\tworkflow w {\n\t\tdescription d\n\t\tverify standard whsec_!!\n\t}\n}", `workflow "w": verify.secrets: signature: secret has the "whsec_" prefix but is not valid base64, at Caddyfile:5`},
		{"workflow declared twice", "hookgate_ingress {\n\tworkflow w\n\tworkflow w\n}", `workflow "w" is declared twice, at Caddyfile:4`},
		{"target id twice", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/a {\n\t\t\tid t\n\t\t}\n\t\tforward http://example.com/b {\n\t\t\tid t\n\t\t}\n\t}\n}", `targets[1].id: "t" is also the id of targets[0]`},
		{"target id without name", "hookgate_ingress {\n\tworkflow w {\n\t\tforward http://example.com/a {\n\t\t\tid\n\t\t}\n\t}\n}", `wrong argument count`},
		{"api without token", "hookgate_api", `needs token`},
		{"api unknown option", "hookgate_api {\n\ttokn x\n}", `unrecognized hookgate_api option "tokn", at Caddyfile:3`},
		{"jwt leeway over bound", "hookgate_api {\n\tjwt {\n\t\tissuer https://i.example/\n\t\tjwks_url https://i.example/keys\n\t\taudience a\n\t\tfull Admin\n\t\tleeway 10m\n\t}\n}", `leeway: 10m is over the maximum of 5m0s, at Caddyfile:8`},
		{"jwt file jwks_url", "hookgate_api {\n\tjwt {\n\t\tjwks_url file:///etc/jwks.json\n\t}\n}", `jwt: jwks_url "file:///etc/jwks.json" is not an http(s) URL, at Caddyfile:4`},
		{"jwt unknown option", "hookgate_api {\n\tjwt {\n\t\tissuer https://i.example/\n\t\tjwks_url https://i.example/keys\n\t\taudience a\n\t\tfull Admin\n\t\taud x\n\t}\n}", `unrecognized jwt option "aud", at Caddyfile:8`},
		{"jwt without issuer", "hookgate_api {\n\tjwt {\n\t\tjwks_url https://i.example/keys\n\t\taudience a\n\t\tfull A\n\t}\n}", `jwt: issuer is required, at Caddyfile:3`},
		{"jwt without grants", "hookgate_api {\n\tjwt {\n\t\tissuer https://i.example/\n\t\tjwks_url https://i.example/keys\n\t\taudience a\n\t\tclaim scp\n\t}\n}", `jwt: full or publish is required`},
		{"jwt twice", "hookgate_api {\n\tjwt {\n\t\tissuer https://i.example/\n\t\tjwks_url https://i.example/keys\n\t\taudience a\n\t\tfull Admin\n\t}\n\tjwt\n}", `jwt: declared twice, at Caddyfile:9`},
		{"jwt audience without value", "hookgate_api {\n\tjwt {\n\t\tissuer https://i.example/\n\t\tjwks_url https://i.example/keys\n\t\taudience a\n\t\tfull Admin\n\t\taudience\n\t}\n}", `wrong argument count`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, ":8080 {\n"+tc.site+"\n}\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// readmeExample returns the first caddyfile block of README.md that holds
// marker.
func readmeExample(t *testing.T, marker string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for block := range strings.SplitSeq(string(readme), "```caddyfile\n") {
		body, _, _ := strings.Cut(block, "```")
		if strings.Contains(body, marker) {
			return body
		}
	}
	t.Fatalf("README.md has no caddyfile example with %q", marker)
	return ""
}

// The README's jwt example adapts, with its placeholders kept for run time.
func TestREADMEJWTExample(t *testing.T) {
	example := readmeExample(t, "jwks_url")
	cfg, err := adapt(t, ":8080 {\n"+example+"}\n")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(cfg)
	for _, want := range []string{
		`"issuer":"https://login.microsoftonline.com/{env.AZURE_TENANT}/v2.0"`,
		`"audiences":["api://hookgate"]`,
		`"full":["Hookgate.Admin"]`,
		`"publish":["Hookgate.Publish"]`,
		`"leeway":60000000000`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted config lacks %s: %s", want, out)
		}
	}
}
