package registry

// SubscriptionsForTopic returns every subscription whose topics match topic,
// sorted by id.
func (r *Registry) SubscriptionsForTopic(topic string) []*CompiledSubscription {
	var out []*CompiledSubscription
	for _, s := range r.Subscriptions() {
		if s.MatchesTopic(topic) {
			out = append(out, s)
		}
	}
	return out
}
