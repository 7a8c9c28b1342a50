package schema

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// schemaGen generates random schemas and payloads over a small vocabulary
// of names and values, so that keywords meet payloads that both satisfy and
// break them.
type schemaGen struct {
	rng   *rand.Rand
	draft string // "7", "2019" or "2020"
}

var (
	genNames   = []string{"a", "b", "c", "x-1"}
	genNumbers = []any{0.0, 1.0, 2.0, 3.0, -1.0, 0.1, 0.3, 1.5, 2.5, 0.01, 1e21}
	genStrings = []any{"", "a", "abc", "é€😀", "https://x.example/p", "a{/b}", "{bad",
		"2024-07-03T13:18:08Z", "a@b.example", "127.0.0.1", "aGk=", "{\"a\":1}"}
	genPatterns = []string{"^a", "c$", "^[a-z]*$", "\\d", "^.{2}$"}
	genFormats  = []string{"uri", "uri-template", "date-time", "email", "ipv4", "unknown-format"}
)

func (g *schemaGen) pick(n int) int { return g.rng.IntN(n) }

// value returns a random JSON value (payload or const/enum), depth-bounded.
func (g *schemaGen) value(depth int) any {
	switch k := g.pick(10); {
	case k == 0:
		return nil
	case k == 1:
		return g.pick(2) == 0
	case k <= 3:
		return genNumbers[g.pick(len(genNumbers))]
	case k <= 5:
		return genStrings[g.pick(len(genStrings))]
	case k <= 7 && depth > 0:
		arr := make([]any, g.pick(4))
		for i := range arr {
			if i > 0 && g.pick(3) == 0 {
				arr[i] = arr[i-1] // duplicates for uniqueItems
			} else {
				arr[i] = g.value(depth - 1)
			}
		}
		return arr
	case depth > 0:
		obj := map[string]any{}
		for range g.pick(4) {
			obj[genNames[g.pick(len(genNames))]] = g.value(depth - 1)
		}
		return obj
	}
	return genStrings[g.pick(len(genStrings))]
}

// schema returns a random subschema, depth-bounded.
func (g *schemaGen) schema(depth int) any {
	if g.pick(12) == 0 {
		return g.pick(3) != 0 // boolean schema
	}
	s := map[string]any{}
	for range 1 + g.pick(3) {
		g.keyword(s, depth)
	}
	return s
}

func (g *schemaGen) names() []any {
	var out []any
	seen := map[string]bool{}
	for range 1 + g.pick(2) {
		n := genNames[g.pick(len(genNames))]
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func (g *schemaGen) keyword(s map[string]any, depth int) {
	sub := func() any { return g.schema(depth - 1) }
	subs := func() []any {
		out := make([]any, 1+g.pick(3))
		for i := range out {
			out[i] = sub()
		}
		return out
	}
	types := []string{"null", "boolean", "number", "integer", "string", "array", "object"}
	if depth <= 0 {
		switch g.pick(4) {
		case 0:
			s["type"] = types[g.pick(len(types))]
		case 1:
			s["enum"] = []any{g.value(1), g.value(1), genNumbers[g.pick(len(genNumbers))]}
		case 2:
			s["format"] = genFormats[g.pick(len(genFormats))]
		default:
			s["const"] = g.value(1)
		}
		return
	}
	switch g.pick(30) {
	case 0:
		s["type"] = []any{types[g.pick(len(types))], types[g.pick(len(types))]}
	case 1:
		s["type"] = types[g.pick(len(types))]
	case 2:
		s["enum"] = []any{g.value(1), g.value(1)}
	case 3:
		s["const"] = g.value(2)
	case 4:
		for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} {
			if g.pick(2) == 0 {
				s[k] = genNumbers[g.pick(len(genNumbers))]
			}
		}
	case 5:
		s["multipleOf"] = []any{0.1, 0.01, 2.0, 3.0, 1.5}[g.pick(5)]
	case 6:
		s["minLength"], s["maxLength"] = g.pick(3), 1+g.pick(3)
	case 7:
		s["pattern"] = genPatterns[g.pick(len(genPatterns))]
	case 8:
		s["format"] = genFormats[g.pick(len(genFormats))]
	case 9, 10:
		props := map[string]any{}
		for _, n := range g.names() {
			props[n.(string)] = sub()
		}
		s["properties"] = props
	case 11:
		s["required"] = g.names()
	case 12:
		if g.pick(2) == 0 {
			s["additionalProperties"] = g.pick(2) == 0
		} else {
			s["additionalProperties"] = sub()
		}
	case 13:
		s["patternProperties"] = map[string]any{genPatterns[g.pick(len(genPatterns))]: sub()}
	case 14:
		s["propertyNames"] = map[string]any{"maxLength": 1 + g.pick(2)}
	case 15:
		s["minProperties"], s["maxProperties"] = g.pick(2), 1+g.pick(3)
	case 16:
		n := genNames[g.pick(len(genNames))]
		switch {
		case g.draft == "7" && g.pick(2) == 0:
			s["dependencies"] = map[string]any{n: g.names()}
		case g.draft == "7":
			s["dependencies"] = map[string]any{n: sub()}
		case g.pick(2) == 0:
			s["dependentRequired"] = map[string]any{n: g.names()}
		default:
			s["dependentSchemas"] = map[string]any{n: sub()}
		}
	case 17:
		if g.draft == "2020" {
			s["prefixItems"] = subs()
			if g.pick(2) == 0 {
				s["items"] = sub()
			}
		} else if g.pick(2) == 0 {
			s["items"] = subs()
			s["additionalItems"] = sub()
		} else {
			s["items"] = sub()
		}
	case 18:
		s["items"] = sub()
	case 19:
		s["contains"] = sub()
		if g.draft != "7" && g.pick(2) == 0 {
			s["minContains"], s["maxContains"] = g.pick(3), 1+g.pick(2)
		}
	case 20:
		s["minItems"], s["maxItems"] = g.pick(2), 1+g.pick(3)
	case 21:
		s["uniqueItems"] = g.pick(4) != 0
	case 22:
		s["allOf"] = subs()
	case 23:
		s["anyOf"] = subs()
	case 24, 25:
		s["oneOf"] = subs()
	case 26:
		s["not"] = sub()
	case 27:
		s["if"], s["then"] = sub(), sub()
		if g.pick(2) == 0 {
			s["else"] = sub()
		}
	case 28:
		s["$ref"] = "#/$defs/d"
	case 29:
		s["contentEncoding"] = "base64"
		s["contentMediaType"] = "application/json"
	}
}

// document returns a random schema document of the generator's draft, with
// a definition "d" that "$ref"s can reach.
func (g *schemaGen) document() []byte {
	root, ok := g.schema(3).(map[string]any)
	if !ok {
		root = map[string]any{"not": g.schema(1)}
	}
	defs := g.schema(2)
	switch g.draft {
	case "7":
		root["$schema"] = "http://json-schema.org/draft-07/schema#"
		root["$defs"] = map[string]any{"d": defs} // draft-07 resolves the pointer anyway
	case "2019":
		root["$schema"] = "https://json-schema.org/draft/2019-09/schema"
		root["$defs"] = map[string]any{"d": defs}
	default:
		root["$defs"] = map[string]any{"d": defs}
	}
	b, err := json.Marshal(root)
	if err != nil {
		panic(err)
	}
	return b
}

// TestFastSchemaRandom holds the fast validator equal to the engine on
// random schemas of drafts 7, 2019-09 and 2020-12 and random payloads.
func TestFastSchemaRandom(t *testing.T) {
	schemas := 3000
	if testing.Short() || raceEnabled {
		schemas = 300
	}
	compiled, fast, checked, valid := 0, 0, 0, 0
	for i := range schemas {
		g := &schemaGen{rng: rand.New(rand.NewPCG(uint64(i), 7)), draft: []string{"7", "2019", "2020"}[i%3]}
		doc := g.document()
		c, err := FromSchema(doc, "")
		if err != nil {
			continue
		}
		compiled++
		if c.fast == nil {
			continue
		}
		fast++
		for range 40 {
			v := g.value(3)
			b, _ := json.Marshal(v)
			var decoded any
			_ = json.Unmarshal(b, &decoded)
			ref := c.validateSchema(decoded)
			if got := c.fast.valid(decoded); got != (ref == nil) {
				t.Fatalf("schema %s\npayload %s\nfast says valid=%v, engine says %v", doc, b, got, ref)
			}
			if ref == nil {
				valid++
			}
			checked++
		}
	}
	if fast < schemas/2 || valid < checked/10 || valid > checked*9/10 {
		t.Fatalf("a weak run: %d schemas, %d compiled, %d fast, %d of %d payloads valid", schemas, compiled, fast, valid, checked)
	}
	t.Logf("%d schemas, %d compiled, %d on the fast path; %d payloads agree (%d valid)", schemas, compiled, fast, checked, valid)
}

// randomSeeds returns a few generated schema and payload pairs, to seed
// FuzzSchemaFastPath with structure its mutations can explore.
func randomSeeds(n int) [][2][]byte {
	var out [][2][]byte
	for i := range n {
		g := &schemaGen{rng: rand.New(rand.NewPCG(uint64(i), 13)), draft: []string{"7", "2019", "2020"}[i%3]}
		v, _ := json.Marshal(g.value(3))
		out = append(out, [2][]byte{g.document(), v})
	}
	return out
}
