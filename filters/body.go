package filters

import (
	"github.com/expr-lang/expr/ast"
)

// Selection is what a workflow filter reads of a value (its body, or a
// member of it): the whole value, or only some of its members, read by
// constant name (body.a.b, body["a"], body?.a), each with what is read of
// its own value.
//
// It lets the request path build only the parts of a body that the filter
// can observe: a value projected on a Selection (the whole value when Whole
// or when it is not an object; otherwise an object with just the selected
// members present in it, each projected in turn) gives the filter exactly
// the verdict and the error of the whole value.
type Selection struct {
	// Whole means the value may be read in any way: keep all of it.
	Whole bool
	// Members are the members read by name (when not Whole).
	Members map[string]*Selection
}

// BodySelection returns what the filter reads of body: Whole (all of it)
// unless every use of body is a chain of members of constant names. A nil
// predicate reads nothing. The Selection is the predicate's own, shared by
// every caller: it must not be modified.
func (p *RequestPredicate) BodySelection() *Selection {
	if p == nil {
		return &Selection{}
	}
	return p.body
}

// whole is the Selection of a value read as a whole.
var whole = &Selection{Whole: true}

// bodySelection finds what the program rooted at root reads of body. Only
// chains of members of constant names, starting at the identifier body,
// are followed: the value at the end of each chain is selected whole. Any
// other use of body itself (len(body), body[x], "k" in body, a function
// argument, a variable, $env, a method call) selects body whole.
func bodySelection(root ast.Node) *Selection {
	// parent maps a node to the member access or optional chain it is
	// the object of; benign holds the $env arguments of the evaluation
	// meter's calls (limits.go), which read nothing of the environment.
	parent := map[ast.Node]ast.Node{}
	benign := map[ast.Node]bool{}
	var idents []*ast.IdentifierNode
	ast.Walk(&root, visitor(func(n ast.Node) {
		switch n := n.(type) {
		case *ast.MemberNode:
			if !n.Method {
				parent[n.Node] = n
			}
		case *ast.ChainNode:
			parent[n.Node] = n
		case *ast.CallNode:
			if id, ok := n.Callee.(*ast.IdentifierNode); ok && (id.Value == stepFn || id.Value == countFn) && len(n.Arguments) > 0 {
				if env, ok := n.Arguments[0].(*ast.IdentifierNode); ok && env.Value == "$env" {
					benign[env] = true
				}
			}
		case *ast.IdentifierNode:
			idents = append(idents, n)
		}
	}))
	sel := &Selection{}
	for _, id := range idents {
		switch id.Value {
		case "$env":
			if !benign[id] {
				return whole
			}
		case "body":
			var names []string
			var cur ast.Node = id
		chain:
			for {
				switch p := parent[cur].(type) {
				case *ast.MemberNode:
					name, ok := p.Property.(*ast.StringNode)
					if !ok {
						break chain
					}
					names = append(names, name.Value)
					cur = p
				case *ast.ChainNode:
					cur = p
				default:
					break chain
				}
			}
			if len(names) == 0 {
				return whole
			}
			sel.add(names)
		}
	}
	return sel
}

// add selects the value at the member chain names whole.
func (s *Selection) add(names []string) {
	for _, name := range names {
		if s.Whole {
			return
		}
		if s.Members == nil {
			s.Members = map[string]*Selection{}
		}
		next := s.Members[name]
		if next == nil {
			next = &Selection{}
			s.Members[name] = next
		}
		s = next
	}
	s.Whole, s.Members = true, nil
}

// visitor is an ast.Visitor calling f on every node.
type visitor func(ast.Node)

func (f visitor) Visit(n *ast.Node) { f(*n) }
