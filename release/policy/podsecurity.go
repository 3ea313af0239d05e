package policy

// Pod security rules, one per requirement so a refusal names exactly what is wrong. Each matches
// Pods; Kyverno generates the same rule for Deployments, DaemonSets, StatefulSets, ReplicaSets,
// Jobs (autogen-<rule>) and CronJobs (autogen-cronjob-<rule>). Containers, init containers and
// ephemeral containers are all held to them.
//
// Patterns: "=(field)" is Kyverno's conditional anchor (when present, it must match); a pattern
// list element applies to every element of the list; anyPattern passes when one pattern does.

// podSecurityRule is one rule: its name, message and validate body (pattern, anyPattern or foreach).
type podSecurityRule struct {
	name, message string
	validate      m
}

// containerLists are the Pod spec's container lists, the first one required.
var containerLists = []string{"containers", "=(initContainers)", "=(ephemeralContainers)"}

// everyContainer is a pattern applying c to each container of every list.
func everyContainer(c m) m {
	spec := m{}
	for _, list := range containerLists {
		spec[list] = l{c}
	}
	return spec
}

// podOrEveryContainer is the anyPattern for a securityContext setting allowed at the Pod level
// (then containers may only repeat it) or on every container.
func podOrEveryContainer(podLevel, containerLevel m) l {
	atPod := everyContainer(m{"=(securityContext)": anchored(containerLevel)})
	atPod["securityContext"] = podLevel
	atContainers := everyContainer(m{"securityContext": containerLevel})
	atContainers["=(securityContext)"] = anchored(podLevel)
	return l{m{"spec": atPod}, m{"spec": atContainers}}
}

// anchored turns every key of a pattern into a conditional anchor, recursively.
func anchored(p m) m {
	out := m{}
	for k, v := range p {
		if sub, ok := v.(m); ok {
			v = anchored(sub)
		}
		out["=("+k+")"] = v
	}
	return out
}

func podSecurityRules() []podSecurityRule {
	return []podSecurityRule{
		{
			name:    "images-by-digest",
			message: "every container image must be referenced by digest (image@sha256:…): a tag can be moved to another image",
			validate: m{"pattern": m{"spec": everyContainer(m{
				"image": "*@sha256:*",
			})}},
		},
		{
			name:    "no-latest-tag",
			message: "the :latest tag is never allowed, not even beside a digest: name the released version",
			validate: m{"pattern": m{"spec": everyContainer(m{
				"image": "!*:latest & !*:latest@*",
			})}},
		},
		{
			name: "run-as-non-root",
			message: "containers must run as non-root: set securityContext.runAsNonRoot: true on the Pod or on " +
				"every container (and never false on a container)",
			validate: m{"anyPattern": podOrEveryContainer(m{"runAsNonRoot": true}, m{"runAsNonRoot": true})},
		},
		{
			name:    "run-as-user-not-root",
			message: "securityContext.runAsUser must not be 0 (root), on the Pod or on any container",
			validate: m{"pattern": m{"spec": func() m {
				s := everyContainer(m{"=(securityContext)": m{"=(runAsUser)": ">0"}})
				s["=(securityContext)"] = m{"=(runAsUser)": ">0"}
				return s
			}()}},
		},
		{
			name:    "read-only-root-filesystem",
			message: "every container must set securityContext.readOnlyRootFilesystem: true (mount an emptyDir where it must write)",
			validate: m{"pattern": m{"spec": everyContainer(m{
				"securityContext": m{"readOnlyRootFilesystem": true},
			})}},
		},
		{
			name:    "no-privilege-escalation",
			message: "every container must set securityContext.allowPrivilegeEscalation: false",
			validate: m{"pattern": m{"spec": everyContainer(m{
				"securityContext": m{"allowPrivilegeEscalation": false},
			})}},
		},
		{
			name:    "drop-all-capabilities",
			message: "every container must drop all capabilities: securityContext.capabilities.drop: [ALL]",
			validate: m{"foreach": l{m{
				"list": "request.object.spec.[containers, initContainers, ephemeralContainers][]",
				"deny": m{"conditions": m{"all": l{m{
					"key":      "ALL",
					"operator": "AnyNotIn",
					"value":    "{{ element.securityContext.capabilities.drop[].to_upper(@) || `[]` }}",
				}}}},
			}}},
		},
		{
			name: "seccomp-runtime-default",
			message: "the RuntimeDefault seccomp profile is required: set securityContext.seccompProfile.type: " +
				"RuntimeDefault on the Pod or on every container (and no other type on a container)",
			validate: m{"anyPattern": podOrEveryContainer(
				m{"seccompProfile": m{"type": "RuntimeDefault"}},
				m{"seccompProfile": m{"type": "RuntimeDefault"}},
			)},
		},
	}
}

func (t trust) podSecurity() ([]byte, error) {
	name := t.project + "-pod-security"
	var rules l
	desc := []string{
		"Kyverno ClusterPolicy (Kyverno >= 1.13; policies/tests/pod-security runs it with `kyverno test`): every Pod — and, through Kyverno's auto-generated rules, every Deployment, StatefulSet, DaemonSet, Job and CronJob — is refused (Enforce) unless it satisfies each rule:",
		"",
	}
	for _, r := range podSecurityRules() {
		v := m{"message": r.message, "failureAction": "Enforce"}
		for k, val := range r.validate {
			v[k] = val
		}
		rules = append(rules, m{
			"name":     r.name,
			"match":    m{"any": l{m{"resources": m{"kinds": l{"Pod"}}}}},
			"validate": v,
		})
		desc = append(desc, "- "+r.name+": "+r.message)
	}
	doc := m{
		"apiVersion": "kyverno.io/v1",
		"kind":       "ClusterPolicy",
		"metadata": m{
			"name": name,
			"annotations": m{
				"policies.kyverno.io/title":       "Pod security for " + t.project,
				"policies.kyverno.io/category":    "Pod Security",
				"policies.kyverno.io/severity":    "high",
				"policies.kyverno.io/subject":     "Pod",
				"policies.kyverno.io/description": "Images by digest and never :latest; non-root; read-only root filesystem; no privilege escalation; all capabilities dropped; RuntimeDefault seccomp.",
			},
		},
		"spec": m{
			// Enforce for Kyverno before 1.13; later versions read each rule's failureAction.
			"validationFailureAction": "Enforce",
			"background":              true,
			"rules":                   rules,
		},
	}
	return t.encode(desc, doc)
}
