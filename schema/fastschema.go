package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Validators a contract can take on the request path, as reported by
// [Contract.Validator].
const (
	// ValidatorFast is a compiled validator that decides without building
	// errors: the sample validator of sample contracts, or the fail-fast
	// validator of JSON Schema contracts.
	ValidatorFast = "fast"
	// ValidatorEngine is the JSON Schema engine (jsonschema/v5), used for
	// JSON Schema contracts with keywords the fast validator does not cover;
	// [Contract.FallbackReason] names them.
	ValidatorEngine = "engine"
)

// Validator reports which validator decides on the request path:
// [ValidatorFast] or [ValidatorEngine]. Whatever it is, the verdict is the
// engine's, and the errors of a refused payload always come from the engine.
func (c *Contract) Validator() string {
	if c.sample != nil || c.fast != nil {
		return ValidatorFast
	}
	return ValidatorEngine
}

// FallbackReason says why a JSON Schema contract is validated by the engine
// rather than the fast validator, naming the keyword and where it is; it is
// "" when [Contract.Validator] is [ValidatorFast].
func (c *Contract) FallbackReason() string {
	return c.fallback
}

// newSchemaContract returns the contract of a compiled JSON Schema, with its
// fast validator when the schema allows one.
func newSchemaContract(sch *jsonschema.Schema, doc json.RawMessage) *Contract {
	c := &Contract{sch: sch, doc: doc}
	c.fast, c.fallback = compileFast(sch)
	return c
}

// The fast validator of JSON Schema contracts.
//
// The engine evaluates every subschema and builds an error tree for each
// failing branch of oneOf/anyOf; on a provider's whole schema (GitHub's is a
// oneOf over 66 events, most of them a oneOf over their actions) that costs
// tens of milliseconds per payload. The fast validator is compiled from the
// engine's own compiled schema graph (references already resolved) and only
// answers "valid or not": it stops at the first failing keyword, tries the
// cheapest checks of a subschema first (type, const/enum, required, then the
// properties in order of the size of their subschemas, so a discriminating
// property such as "action" is compared before a large nested object is
// walked), and allocates nothing on valid payloads, apart from what the
// format checks allocate, uniqueItems over more than 20 items, and a number
// equal (as a float64) to a limit, which takes exact arithmetic. When it
// refuses a payload, the engine validates it
// again and its verdict and errors are the ones returned: the fast validator
// must never accept what the engine refuses, and a differential test and a
// fuzz target hold the two equal.
//
// Keywords are read from the compiled *jsonschema.Schema, so draft
// differences the compiler resolves are inherited: draft-04 boolean
// exclusiveMinimum/exclusiveMaximum, keywords ignored next to $ref before
// 2019-09, vocabularies, items/additionalItems versus prefixItems/items.
// Values are compared the way the engine compares them: numbers as the
// rational value of their shortest decimal form (the engine parses
// fmt.Sprint(v) into a big.Rat), string lengths in code points, patterns with
// the engine's compiled regexps, formats with the functions the engine's
// compiler is configured with.
//
// A schema that uses any of the following is validated by the engine
// instead (the reason is on the contract):
//   - $recursiveRef, $dynamicRef (dynamic scope);
//   - unevaluatedProperties, unevaluatedItems (annotation collection);
//   - contentSchema where content is asserted (draft-07);
//   - the draft-04 meta-schema's regexProperties, keyword extensions;
//   - a subschema that reaches itself through $ref, allOf, anyOf, oneOf,
//     not, if/then/else or dependencies without descending into the payload
//     (the engine reports an infinite loop).
//
// Payloads are expected to hold the values of encoding/json or
// internal/jsonvalue (float64 numbers). Any other Go value met on the way
// (json.Number, int, …) makes the fast validator defer to the engine.

// JSON types, as a bit set. jInteger is only used in type constraints: a
// payload number is jNumber, and satisfies jInteger when it is integral.
const (
	jNull uint8 = 1 << iota
	jBoolean
	jNumber
	jInteger
	jString
	jArray
	jObject
)

var jsonTypeBits = map[string]uint8{
	"null": jNull, "boolean": jBoolean, "number": jNumber, "integer": jInteger,
	"string": jString, "array": jArray, "object": jObject,
}

// errUndecided is panicked by the fast validator when it meets a value it
// does not handle; the engine then decides.
var errUndecided = errors.New("schema: fast validator cannot decide")

// fastNode is one compiled subschema. Limits are -1 when absent.
type fastNode struct {
	never bool // the false schema
	empty bool // no constraint at all: accepts any value without looking

	types    uint8
	hasConst bool
	constant any
	enum     []any // nil when absent; never empty when present
	format   func(any) bool

	// objects
	minProps, maxProps int
	required           []string
	props              []fastProp // with constraints, cheapest first
	propSet            map[string]struct{}
	patterns           []fastPattern
	additional         *fastNode
	noAdditional       bool
	propertyNames      *fastNode
	depRequired        []fastDepRequired
	depSchemas         []fastDepSchema

	// arrays
	minItems, maxItems       int
	unique                   bool
	tuple                    []*fastNode // items by position
	rest                     *fastNode   // items after the tuple
	noRest                   bool        // additionalItems: false
	contains                 *fastNode
	minContains, maxContains int

	// strings
	minLength, maxLength int
	pattern              *regexp.Regexp
	contentEncoding      bool // the encoding is named, known or not
	decode               func(string) ([]byte, error)
	mediaType            func([]byte) error

	// numbers
	minimum, exclusiveMinimum, maximum, exclusiveMaximum, multipleOf *fastNum

	// in place
	ref                 *fastNode
	allOf, anyOf, oneOf []*fastNode // allOf and anyOf cheapest first
	not                 *fastNode
	ifSchema            *fastNode
	thenSchema          *fastNode
	elseSchema          *fastNode

	cost int // estimated work, to order checks
}

type fastProp struct {
	name string
	node *fastNode
}

type fastPattern struct {
	re   *regexp.Regexp
	node *fastNode
}

type fastDepRequired struct {
	name     string
	required []string
}

type fastDepSchema struct {
	name string
	node *fastNode
}

// fastNum is a numeric limit: its exact value, and the float64 nearest to
// it. A payload number x compares to the limit the way the engine compares
// its shortest decimal form d(x): d(x) rounds to x and the limit rounds to f,
// so x < f implies d(x) < limit and x > f implies d(x) > limit; only x == f
// needs the exact comparison.
type fastNum struct {
	r        *big.Rat
	f        float64
	smallInt bool // a non-zero integer below 2^53: multipleOf by float division
}

func newFastNum(r *big.Rat) *fastNum {
	if r == nil {
		return nil
	}
	f, _ := r.Float64()
	return &fastNum{r: r, f: f, smallInt: r.IsInt() && f != 0 && math.Abs(f) < 1<<53}
}

// cmp compares the shortest decimal form of x with n.
func (n *fastNum) cmp(x float64) int {
	switch {
	case x < n.f:
		return -1
	case x > n.f:
		return 1
	}
	return decimalRat(x).Cmp(n.r)
}

// multiple reports whether the shortest decimal form of x is an integer
// multiple of n.
func (n *fastNum) multiple(x float64) bool {
	if n.smallInt && x == math.Trunc(x) && math.Abs(x) < 1<<53 {
		// Both are exact integers: float remainder is exact.
		return math.Mod(x, n.f) == 0
	}
	return new(big.Rat).Quo(decimalRat(x), n.r).IsInt()
}

// decimalRat is the rational value the engine gives a float64: that of its
// shortest decimal form (fmt.Sprint).
func decimalRat(x float64) *big.Rat {
	r, _ := new(big.Rat).SetString(strconv.FormatFloat(x, 'g', -1, 64))
	return r
}

// isInteger reports whether the engine's rational value of x is an integer:
// the shortest decimal form of an integral float64 is that integer, and that
// of a fractional float64 is never an integer.
func isInteger(x float64) bool { return x == math.Trunc(x) }

// unmatchable stands, in a compiled const or enum, for a schema number that
// no float64 payload number equals in the engine's arithmetic: one that is
// not the shortest decimal form of its nearest float64 (e.g. 0.10000000000000001
// or 1e400).
type unmatchable struct{}

// normalizeConst converts a const or enum value of the compiled schema
// (json.Number numbers) into the values of a decoded payload (float64), so
// payload values compare with ==.
func normalizeConst(v any) any {
	switch v := v.(type) {
	case json.Number:
		// Decide numbers outside float64's range from the float first:
		// big.Rat would build 10^exponent (the engine only ever does so when
		// a payload number meets the value).
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) {
			return unmatchable{}
		}
		if f == 0 {
			mantissa, _, _ := strings.Cut(strings.ToLower(string(v)), "e")
			if strings.Trim(mantissa, "-0.") != "" {
				return unmatchable{} // a non-zero number below float64's range
			}
			return 0.0
		}
		// In range, the exponent is bounded by the length of the literal.
		r, ok := new(big.Rat).SetString(string(v))
		if !ok || decimalRat(f).Cmp(r) != 0 {
			return unmatchable{}
		}
		return f
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalizeConst(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalizeConst(e)
		}
		return out
	}
	return v
}

// jsonEqual is the engine's equality (numbers by value, objects regardless
// of key order) on payload values and normalized constants.
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case bool:
		bb, ok := b.(bool)
		return ok && a == bb
	case float64:
		bf, ok := b.(float64)
		return ok && a == bf
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case []any:
		ba, ok := b.([]any)
		if !ok || len(a) != len(ba) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], ba[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, av := range a {
			bv, ok := bm[k]
			if !ok || !jsonEqual(av, bv) {
				return false
			}
		}
		return true
	}
	panic(errUndecided)
}

var uniqueSeed = maphash.MakeSeed()

// hashJSON hashes a payload value consistently with jsonEqual.
func hashJSON(h *maphash.Hash, v any) {
	switch v := v.(type) {
	case nil:
		h.WriteByte(0)
	case bool:
		h.WriteByte(1)
		if v {
			h.WriteByte(1)
		} else {
			h.WriteByte(0)
		}
	case float64:
		h.WriteByte(2)
		if v == 0 {
			v = 0 // -0 equals 0
		}
		maphash.WriteComparable(h, v)
	case string:
		h.WriteByte(3)
		h.WriteString(v)
	case []any:
		h.WriteByte(4)
		for _, e := range v {
			hashJSON(h, e)
		}
	case map[string]any:
		h.WriteByte(5)
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			h.WriteString(k)
			h.WriteByte(0)
			hashJSON(h, v[k])
		}
	default:
		panic(errUndecided)
	}
}

// uniqueItems reports whether no two items of a are equal.
func uniqueItems(a []any) bool {
	if len(a) <= 20 {
		for i := 1; i < len(a); i++ {
			for j := range i {
				if jsonEqual(a[i], a[j]) {
					return false
				}
			}
		}
		return true
	}
	seen := make(map[uint64][]int, len(a))
	var h maphash.Hash
	h.SetSeed(uniqueSeed)
	for i, e := range a {
		h.Reset()
		hashJSON(&h, e)
		k := h.Sum64()
		for _, j := range seen[k] {
			if jsonEqual(a[j], e) {
				return false
			}
		}
		seen[k] = append(seen[k], i)
	}
	return true
}

// accepts reports whether v is valid; false also when the fast validator
// cannot decide (the caller then asks the engine).
func (n *fastNode) accepts(v any) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			// errUndecided, or a failure of a format function on a value the
			// engine would meet as well: the engine decides and reports.
			ok = false
		}
	}()
	return n.valid(v)
}

// valid reports whether v is valid against n, stopping at the first failure.
func (n *fastNode) valid(v any) bool {
	if n.empty {
		return true
	}
	if n.never {
		return false
	}
	var kind uint8
	switch v.(type) {
	case nil:
		kind = jNull
	case bool:
		kind = jBoolean
	case float64:
		kind = jNumber
	case string:
		kind = jString
	case []any:
		kind = jArray
	case map[string]any:
		kind = jObject
	default:
		panic(errUndecided)
	}
	if n.types != 0 && n.types&kind == 0 {
		if kind != jNumber || n.types&jInteger == 0 || !isInteger(v.(float64)) {
			return false
		}
	}
	if n.hasConst && !jsonEqual(v, n.constant) {
		return false
	}
	if n.enum != nil && !slices.ContainsFunc(n.enum, func(e any) bool { return jsonEqual(v, e) }) {
		return false
	}
	if n.format != nil && !n.format(v) {
		return false
	}
	switch v := v.(type) {
	case map[string]any:
		if !n.validObject(v) {
			return false
		}
	case []any:
		if !n.validArray(v) {
			return false
		}
	case string:
		if !n.validString(v) {
			return false
		}
	case float64:
		if !n.validNumber(v) {
			return false
		}
	}
	return n.validInPlace(v)
}

func (n *fastNode) validObject(o map[string]any) bool {
	if n.minProps >= 0 && len(o) < n.minProps {
		return false
	}
	if n.maxProps >= 0 && len(o) > n.maxProps {
		return false
	}
	for _, k := range n.required {
		if _, ok := o[k]; !ok {
			return false
		}
	}
	if n.noAdditional {
		// Names only, before any value is walked: this is what refuses most
		// of the wrong branches of a provider's oneOf.
		for k := range o {
			if _, ok := n.propSet[k]; !ok && !slices.ContainsFunc(n.patterns, func(p fastPattern) bool { return p.re.MatchString(k) }) {
				return false
			}
		}
	}
	for _, p := range n.props {
		if pv, ok := o[p.name]; ok && !p.node.valid(pv) {
			return false
		}
	}
	if n.propertyNames != nil {
		for k := range o {
			if !n.propertyNames.valid(k) {
				return false
			}
		}
	}
	if len(n.patterns) > 0 || n.additional != nil {
		for k, pv := range o {
			_, evaluated := n.propSet[k]
			for _, p := range n.patterns {
				if p.re.MatchString(k) {
					evaluated = true
					if !p.node.valid(pv) {
						return false
					}
				}
			}
			if !evaluated && n.additional != nil && !n.additional.valid(pv) {
				return false
			}
		}
	}
	for _, d := range n.depRequired {
		if _, ok := o[d.name]; ok {
			for _, k := range d.required {
				if _, ok := o[k]; !ok {
					return false
				}
			}
		}
	}
	for _, d := range n.depSchemas {
		if _, ok := o[d.name]; ok && !d.node.valid(o) {
			return false
		}
	}
	return true
}

func (n *fastNode) validArray(a []any) bool {
	if n.minItems >= 0 && len(a) < n.minItems {
		return false
	}
	if n.maxItems >= 0 && len(a) > n.maxItems {
		return false
	}
	if n.noRest && len(a) > len(n.tuple) {
		return false
	}
	for i, e := range a {
		switch {
		case i < len(n.tuple):
			if !n.tuple[i].valid(e) {
				return false
			}
		case n.rest != nil:
			if !n.rest.valid(e) {
				return false
			}
		}
	}
	if n.contains != nil {
		matched := 0
		for _, e := range a {
			if n.contains.valid(e) {
				matched++
				if n.maxContains < 0 && n.minContains >= 0 && matched >= n.minContains {
					break
				}
				if n.maxContains >= 0 && matched > n.maxContains {
					return false
				}
			}
		}
		if n.minContains >= 0 && matched < n.minContains {
			return false
		}
	}
	if n.unique && !uniqueItems(a) {
		return false
	}
	return true
}

func (n *fastNode) validString(s string) bool {
	if n.minLength >= 0 || n.maxLength >= 0 {
		length := utf8.RuneCountInString(s)
		if n.minLength >= 0 && length < n.minLength {
			return false
		}
		if n.maxLength >= 0 && length > n.maxLength {
			return false
		}
	}
	if n.pattern != nil && !n.pattern.MatchString(s) {
		return false
	}
	if n.decode != nil || n.mediaType != nil {
		// As the engine: an unknown encoding leaves the content undecoded,
		// and undecoded content is not checked against the media type.
		decoded := !n.contentEncoding
		content := []byte(nil)
		if n.decode != nil {
			b, err := n.decode(s)
			if err != nil {
				return false
			}
			content, decoded = b, true
		}
		if decoded && n.mediaType != nil {
			if n.decode == nil {
				content = []byte(s)
			}
			if n.mediaType(content) != nil {
				return false
			}
		}
	}
	return true
}

func (n *fastNode) validNumber(x float64) bool {
	if n.minimum != nil && n.minimum.cmp(x) < 0 {
		return false
	}
	if n.exclusiveMinimum != nil && n.exclusiveMinimum.cmp(x) <= 0 {
		return false
	}
	if n.maximum != nil && n.maximum.cmp(x) > 0 {
		return false
	}
	if n.exclusiveMaximum != nil && n.exclusiveMaximum.cmp(x) >= 0 {
		return false
	}
	if n.multipleOf != nil && !n.multipleOf.multiple(x) {
		return false
	}
	return true
}

func (n *fastNode) validInPlace(v any) bool {
	if n.ref != nil && !n.ref.valid(v) {
		return false
	}
	for _, s := range n.allOf {
		if !s.valid(v) {
			return false
		}
	}
	if n.not != nil && n.not.valid(v) {
		return false
	}
	if len(n.anyOf) > 0 && !slices.ContainsFunc(n.anyOf, func(s *fastNode) bool { return s.valid(v) }) {
		return false
	}
	if len(n.oneOf) > 0 {
		matched := 0
		for _, s := range n.oneOf {
			if s.valid(v) {
				if matched++; matched > 1 {
					return false
				}
			}
		}
		if matched == 0 {
			return false
		}
	}
	if n.ifSchema != nil {
		if n.ifSchema.valid(v) {
			if n.thenSchema != nil && !n.thenSchema.valid(v) {
				return false
			}
		} else if n.elseSchema != nil && !n.elseSchema.valid(v) {
			return false
		}
	}
	return true
}

// compileFast compiles the fast validator of a compiled schema, or returns
// why the schema needs the engine.
func compileFast(root *jsonschema.Schema) (*fastNode, string) {
	all := reachable(root)
	for _, s := range all {
		if reason := unsupported(s); reason != "" {
			return nil, fmt.Sprintf("%s (at %s)", reason, s.Location)
		}
	}
	if s := inPlaceCycle(all); s != nil {
		return nil, fmt.Sprintf("the subschema at %s reaches itself without descending into the payload", s.Location)
	}
	fc := fastCompiler{nodes: make(map[*jsonschema.Schema]*fastNode, len(all))}
	n := fc.node(root)
	costs := costing{done: make(map[*fastNode]bool, len(all)), onStack: make(map[*fastNode]bool)}
	costs.cost(n)
	for _, fn := range fc.nodes {
		fn.order()
	}
	return n, ""
}

// unsupported returns the keyword of s that the fast validator does not
// implement, or "".
func unsupported(s *jsonschema.Schema) string {
	switch {
	case s.RecursiveRef != nil:
		return "$recursiveRef"
	case s.DynamicRef != nil:
		return "$dynamicRef"
	case s.UnevaluatedProperties != nil:
		return "unevaluatedProperties"
	case s.UnevaluatedItems != nil:
		return "unevaluatedItems"
	case s.ContentSchema != nil:
		return "contentSchema"
	case s.RegexProperties:
		return "regexProperties"
	case len(s.Extensions) > 0:
		return "keyword extension " + strings.Join(slices.Sorted(maps.Keys(s.Extensions)), ", ")
	case s.Format != "" && !formatAsserted(s):
		// Before 2019-09 formats are asserted whatever the configuration;
		// from 2019-09 on without AssertFormat it depends on the
		// meta-schema's vocabulary, which the compiled schema does not show.
		return "format without assertFormat"
	}
	return ""
}

// draftBefore2019 reports whether d is draft-04, -06 or -07.
func draftBefore2019(d *jsonschema.Draft) bool {
	return d == jsonschema.Draft4 || d == jsonschema.Draft6 || d == jsonschema.Draft7
}

// formatAsserted reports whether the engine asserts the format of s (when
// it knows the format).
func formatAsserted(s *jsonschema.Schema) bool {
	return assertFormat || draftBefore2019(s.Draft)
}

// formatFunc returns the check the engine's compiler gives s.Format: ours
// first (newCompiler installs them), then the library's.
func formatFunc(name string) func(any) bool {
	if f, ok := formatOverrides[name]; ok {
		return f
	}
	return jsonschema.Formats[name]
}

// contentAsserted reports whether the engine asserts contentEncoding and
// contentMediaType in s: always in draft-07 (before it, the keywords do not
// exist), from 2019-09 on only with AssertContent.
func contentAsserted(s *jsonschema.Schema) bool {
	return s.Draft == jsonschema.Draft7 || (!draftBefore2019(s.Draft) && assertContent)
}

// edges returns the subschemas of s applied to the same value (in place)
// and those applied to parts of it.
func edges(s *jsonschema.Schema) (inPlace, below []*jsonschema.Schema) {
	add := func(list *[]*jsonschema.Schema, ss ...*jsonschema.Schema) {
		for _, c := range ss {
			if c != nil {
				*list = append(*list, c)
			}
		}
	}
	add(&inPlace, s.Ref, s.RecursiveRef, s.DynamicRef, s.Not, s.If, s.Then, s.Else)
	add(&inPlace, s.AllOf...)
	add(&inPlace, s.AnyOf...)
	add(&inPlace, s.OneOf...)
	for _, d := range s.Dependencies {
		if d, ok := d.(*jsonschema.Schema); ok {
			add(&inPlace, d)
		}
	}
	for _, d := range s.DependentSchemas {
		add(&inPlace, d)
	}
	for _, p := range s.Properties {
		add(&below, p)
	}
	for _, p := range s.PatternProperties {
		add(&below, p)
	}
	if a, ok := s.AdditionalProperties.(*jsonschema.Schema); ok {
		add(&below, a)
	}
	add(&below, s.PropertyNames, s.Contains, s.Items2020, s.UnevaluatedProperties, s.UnevaluatedItems, s.ContentSchema)
	add(&below, s.PrefixItems...)
	switch items := s.Items.(type) {
	case *jsonschema.Schema:
		add(&below, items)
	case []*jsonschema.Schema:
		add(&below, items...)
	}
	if a, ok := s.AdditionalItems.(*jsonschema.Schema); ok {
		add(&below, a)
	}
	return inPlace, below
}

// reachable lists every schema reachable from root, root first.
func reachable(root *jsonschema.Schema) []*jsonschema.Schema {
	seen := map[*jsonschema.Schema]bool{root: true}
	out := []*jsonschema.Schema{root}
	for i := 0; i < len(out); i++ {
		inPlace, below := edges(out[i])
		for _, c := range append(inPlace, below...) {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// inPlaceCycle returns a schema that reaches itself through in-place
// keywords only, or nil.
func inPlaceCycle(all []*jsonschema.Schema) *jsonschema.Schema {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make(map[*jsonschema.Schema]int, len(all))
	var visit func(s *jsonschema.Schema) *jsonschema.Schema
	visit = func(s *jsonschema.Schema) *jsonschema.Schema {
		state[s] = visiting
		inPlace, _ := edges(s)
		for _, c := range inPlace {
			switch state[c] {
			case visiting:
				return c
			case unvisited:
				if found := visit(c); found != nil {
					return found
				}
			}
		}
		state[s] = done
		return nil
	}
	for _, s := range all {
		if state[s] == unvisited {
			if found := visit(s); found != nil {
				return found
			}
		}
	}
	return nil
}

type fastCompiler struct {
	nodes map[*jsonschema.Schema]*fastNode
}

// node returns the fast node of s, compiling it once (schemas may be
// recursive through properties and items).
func (fc *fastCompiler) node(s *jsonschema.Schema) *fastNode {
	if n, ok := fc.nodes[s]; ok {
		return n
	}
	n := &fastNode{
		minProps: s.MinProperties, maxProps: s.MaxProperties,
		minItems: s.MinItems, maxItems: s.MaxItems,
		minContains: s.MinContains, maxContains: s.MaxContains,
		minLength: s.MinLength, maxLength: s.MaxLength,
	}
	fc.nodes[s] = n
	if s.Always != nil {
		n.never = !*s.Always
		n.empty = *s.Always
		return n
	}
	nodes := func(ss []*jsonschema.Schema) []*fastNode {
		if len(ss) == 0 {
			return nil
		}
		out := make([]*fastNode, len(ss))
		for i, c := range ss {
			out[i] = fc.node(c)
		}
		return out
	}
	opt := func(c *jsonschema.Schema) *fastNode {
		if c == nil {
			return nil
		}
		return fc.node(c)
	}

	for _, t := range s.Types {
		n.types |= jsonTypeBits[t]
	}
	if len(s.Constant) > 0 {
		n.hasConst, n.constant = true, normalizeConst(s.Constant[0])
	}
	if len(s.Enum) > 0 {
		n.enum = make([]any, len(s.Enum))
		for i, e := range s.Enum {
			n.enum[i] = normalizeConst(e)
		}
	}
	if s.Format != "" {
		n.format = formatFunc(s.Format)
	}

	n.required = s.Required
	if len(s.Properties) > 0 {
		n.propSet = make(map[string]struct{}, len(s.Properties))
		for name, p := range s.Properties {
			n.propSet[name] = struct{}{}
			n.props = append(n.props, fastProp{name: name, node: fc.node(p)})
		}
	}
	for re, p := range s.PatternProperties {
		n.patterns = append(n.patterns, fastPattern{re: re, node: fc.node(p)})
	}
	switch a := s.AdditionalProperties.(type) {
	case bool:
		n.noAdditional = !a
	case *jsonschema.Schema:
		n.additional = fc.node(a)
	}
	n.propertyNames = opt(s.PropertyNames)
	for name, d := range s.Dependencies {
		switch d := d.(type) {
		case []string:
			n.depRequired = append(n.depRequired, fastDepRequired{name: name, required: d})
		case *jsonschema.Schema:
			n.depSchemas = append(n.depSchemas, fastDepSchema{name: name, node: fc.node(d)})
		}
	}
	for name, d := range s.DependentRequired {
		n.depRequired = append(n.depRequired, fastDepRequired{name: name, required: d})
	}
	for name, d := range s.DependentSchemas {
		n.depSchemas = append(n.depSchemas, fastDepSchema{name: name, node: fc.node(d)})
	}

	n.unique = s.UniqueItems
	switch items := s.Items.(type) {
	case *jsonschema.Schema:
		n.rest = fc.node(items)
	case []*jsonschema.Schema:
		n.tuple = nodes(items)
		switch a := s.AdditionalItems.(type) {
		case bool:
			n.noRest = !a
		case *jsonschema.Schema:
			n.rest = fc.node(a)
		}
	}
	if len(s.PrefixItems) > 0 || s.Items2020 != nil {
		n.tuple = nodes(s.PrefixItems)
		n.rest = opt(s.Items2020)
	}
	if s.Contains != nil && (s.MinContains != -1 || s.MaxContains != -1) {
		n.contains = fc.node(s.Contains)
	}

	n.pattern = s.Pattern
	if (s.ContentEncoding != "" || s.ContentMediaType != "") && contentAsserted(s) {
		n.contentEncoding = s.ContentEncoding != ""
		if s.ContentEncoding != "" {
			n.decode = jsonschema.Decoders[s.ContentEncoding]
		}
		if s.ContentMediaType != "" {
			n.mediaType = jsonschema.MediaTypes[s.ContentMediaType]
		}
	}

	n.minimum, n.exclusiveMinimum = newFastNum(s.Minimum), newFastNum(s.ExclusiveMinimum)
	n.maximum, n.exclusiveMaximum = newFastNum(s.Maximum), newFastNum(s.ExclusiveMaximum)
	n.multipleOf = newFastNum(s.MultipleOf)

	n.ref = opt(s.Ref)
	n.allOf, n.anyOf, n.oneOf = nodes(s.AllOf), nodes(s.AnyOf), nodes(s.OneOf)
	n.not = opt(s.Not)
	n.ifSchema, n.thenSchema, n.elseSchema = opt(s.If), opt(s.Then), opt(s.Else)
	return n
}

// isEmpty reports whether n constrains nothing (children are not looked
// at: a child is only reached through a constraint of n).
func (n *fastNode) isEmpty() bool {
	return !n.never && n.types == 0 && !n.hasConst && n.enum == nil && n.format == nil &&
		n.minProps < 0 && n.maxProps < 0 && len(n.required) == 0 && len(n.props) == 0 &&
		len(n.patterns) == 0 && n.additional == nil && !n.noAdditional && n.propertyNames == nil &&
		len(n.depRequired) == 0 && len(n.depSchemas) == 0 &&
		n.minItems < 0 && n.maxItems < 0 && !n.unique && len(n.tuple) == 0 && n.rest == nil &&
		!n.noRest && n.contains == nil &&
		n.minLength < 0 && n.maxLength < 0 && n.pattern == nil && n.decode == nil && n.mediaType == nil &&
		n.minimum == nil && n.exclusiveMinimum == nil && n.maximum == nil && n.exclusiveMaximum == nil &&
		n.multipleOf == nil &&
		n.ref == nil && len(n.allOf) == 0 && len(n.anyOf) == 0 && len(n.oneOf) == 0 && n.not == nil &&
		n.ifSchema == nil
}

// order marks n empty when it is, drops properties whose subschema accepts
// anything, and sorts properties, allOf and anyOf cheapest first (oneOf is
// evaluated whole anyway). Costs must be known.
func (n *fastNode) order() {
	n.props = slices.DeleteFunc(n.props, func(p fastProp) bool { return p.node.empty })
	byCost := func(a, b *fastNode) int { return a.cost - b.cost }
	slices.SortFunc(n.props, func(a, b fastProp) int {
		if c := byCost(a.node, b.node); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	slices.SortStableFunc(n.allOf, byCost)
	slices.SortStableFunc(n.anyOf, byCost)
}

// costing estimates the work of validating against each node: one per
// keyword plus the children, saturated; a node met again while its own cost
// is being computed (recursion through properties or items) counts as
// expensive.
type costing struct {
	done    map[*fastNode]bool
	onStack map[*fastNode]bool
}

const (
	maxCost       = 1 << 20
	recursiveCost = 1 << 10
)

func (c *costing) cost(n *fastNode) int {
	if c.done[n] {
		return n.cost
	}
	if c.onStack[n] {
		return recursiveCost
	}
	c.onStack[n] = true
	defer delete(c.onStack, n)

	total := 1 + len(n.required) + len(n.enum) + len(n.patterns) + len(n.depRequired)
	if n.format != nil || n.pattern != nil || n.unique {
		total += 8
	}
	add := func(ns ...*fastNode) {
		for _, ch := range ns {
			if ch != nil {
				total = min(maxCost, total+c.cost(ch))
			}
		}
	}
	for _, p := range n.props {
		add(p.node)
	}
	for _, p := range n.patterns {
		add(p.node)
	}
	for _, d := range n.depSchemas {
		add(d.node)
	}
	add(n.additional, n.propertyNames, n.rest, n.contains, n.ref, n.not, n.ifSchema, n.thenSchema, n.elseSchema)
	add(n.tuple...)
	add(n.allOf...)
	add(n.anyOf...)
	add(n.oneOf...)
	n.empty = n.empty || n.isEmpty()
	if n.empty {
		total = 0
	}
	n.cost = total
	c.done[n] = true
	return total
}
