//! The routing tree with every option inherited, and Alertmanager's matching
//! walk over it: depth-first, children in order, stop at the first matching
//! child unless it has `continue: true`, and fall back to the node itself
//! when no child matches. `routes test` and the dispatcher both use it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::config::{
    GroupBy, RouteConfig, DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL,
};
use super::matcher::{all_match, format_matchers, Matcher};
use super::time_interval::NamedTimeInterval;
use crate::labels::Labels;

/// Index of a node in a [`RouteTree`].
pub type RouteId = usize;

/// The effective options of a route (after inheritance).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOpts {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// The route's own (not inherited, as in Alertmanager).
    pub mute_time_intervals: Vec<Arc<NamedTimeInterval>>,
    /// The route's own (not inherited, as in Alertmanager).
    pub active_time_intervals: Vec<Arc<NamedTimeInterval>>,
}

impl RouteOpts {
    /// Why the route sends nothing at `now`, as Alertmanager's time stages
    /// decide: the names of its mute intervals in effect; or, when it has
    /// active intervals and none is in effect, their names. Empty: it
    /// sends.
    pub fn muted_by(&self, now: DateTime<Utc>) -> Vec<String> {
        let muting: Vec<String> = self
            .mute_time_intervals
            .iter()
            .filter(|i| i.contains(now))
            .map(|i| i.name.clone())
            .collect();
        if !muting.is_empty() {
            return muting;
        }
        if !self.active_time_intervals.is_empty()
            && !self.active_time_intervals.iter().any(|i| i.contains(now))
        {
            return self
                .active_time_intervals
                .iter()
                .map(|i| i.name.clone())
                .collect();
        }
        Vec::new()
    }

    /// The labels of `labels` this route groups by.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => labels.keep_names(names),
        }
    }
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub struct RouteNode {
    pub id: RouteId,
    pub parent: Option<RouteId>,
    pub opts: RouteOpts,
    pub matchers: Vec<Matcher>,
    pub continue_matching: bool,
    pub children: Vec<RouteId>,
    /// Alertmanager-style key: the matchers of every node from the root,
    /// joined by `/` (e.g. `{}/{team="db"}`); not unique between siblings.
    pub key: String,
    /// Field path in the config file (`route.routes[0]`).
    pub path: String,
}

/// A routing tree built from a validated [`RouteConfig`].
#[derive(Debug, Clone)]
pub struct RouteTree {
    nodes: Vec<RouteNode>,
}

impl RouteTree {
    /// Builds the tree, letting every node inherit unset options from its
    /// parent and the root inherit Alertmanager's defaults.
    pub fn new(root: &RouteConfig) -> RouteTree {
        let defaults = RouteOpts {
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        };
        let mut tree = RouteTree { nodes: Vec::new() };
        tree.add(root, None, &defaults, "");
        tree
    }

    fn add(
        &mut self,
        config: &RouteConfig,
        parent: Option<RouteId>,
        inherited: &RouteOpts,
        parent_key: &str,
    ) -> RouteId {
        let opts = RouteOpts {
            receiver: config
                .receiver
                .clone()
                .unwrap_or_else(|| inherited.receiver.clone()),
            group_by: config
                .group_by
                .clone()
                .unwrap_or_else(|| inherited.group_by.clone()),
            group_wait: config.group_wait.unwrap_or(inherited.group_wait),
            group_interval: config.group_interval.unwrap_or(inherited.group_interval),
            repeat_interval: config.repeat_interval.unwrap_or(inherited.repeat_interval),
            mute_time_intervals: config.mute_time_intervals.clone(),
            active_time_intervals: config.active_time_intervals.clone(),
        };
        let own_key = format_matchers(&config.matchers);
        let key = if parent.is_some() {
            format!("{parent_key}/{own_key}")
        } else {
            own_key
        };
        let id = self.nodes.len();
        self.nodes.push(RouteNode {
            id,
            parent,
            opts: opts.clone(),
            matchers: config.matchers.clone(),
            continue_matching: config.continue_matching,
            children: Vec::new(),
            key: key.clone(),
            path: config.path.clone(),
        });
        let children: Vec<RouteId> = config
            .routes
            .iter()
            .map(|child| self.add(child, Some(id), &opts, &key))
            .collect();
        self.nodes[id].children = children;
        id
    }

    /// The root node.
    pub fn root(&self) -> &RouteNode {
        &self.nodes[0]
    }

    /// A node by id.
    pub fn node(&self, id: RouteId) -> &RouteNode {
        &self.nodes[id]
    }

    /// Every node, root first, depth-first.
    pub fn nodes(&self) -> &[RouteNode] {
        &self.nodes
    }

    /// The nodes an alert with `labels` is routed to, in tree order.
    pub fn matching(&self, labels: &Labels) -> Vec<&RouteNode> {
        let mut out = Vec::new();
        self.walk(0, labels, &mut out);
        out
    }

    /// Receiver names in routing order, duplicates kept (as amtool prints).
    pub fn receivers(&self, labels: &Labels) -> Vec<&str> {
        self.matching(labels)
            .into_iter()
            .map(|node| node.opts.receiver.as_str())
            .collect()
    }

    /// Appends the matches below `id`; returns whether `id` matched at all.
    fn walk<'t>(&'t self, id: RouteId, labels: &Labels, out: &mut Vec<&'t RouteNode>) -> bool {
        let node = &self.nodes[id];
        if !all_match(&node.matchers, labels) {
            return false;
        }
        let before = out.len();
        for &child in &node.children {
            if self.walk(child, labels, out) && !self.nodes[child].continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(node);
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::path::Path;

    use super::*;
    use crate::notify::config::parse;

    fn tree(yaml: &str) -> RouteTree {
        let config = parse(yaml, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        RouteTree::new(&config.route)
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    const CONFIG: &str = "
route:
  receiver: root
  group_by: [alertname]
  group_wait: 10s
  routes:
    - receiver: a
      matchers: [team=x]
      continue: true
      group_by: ['...']
    - receiver: b
      match: {team: x}
      repeat_interval: 1h
      routes:
        - receiver: c
          matchers: [sev=crit]
    - receiver: a
      match_re: {sev: crit|warn}
receivers: [{name: root}, {name: a}, {name: b}, {name: c}]
";

    #[test]
    fn unmatched_alert_goes_to_the_root_receiver() {
        assert_eq!(tree(CONFIG).receivers(&labels(&[("team", "y")])), ["root"]);
    }

    #[test]
    fn continue_lets_later_siblings_match_too() {
        assert_eq!(
            tree(CONFIG).receivers(&labels(&[("team", "x")])),
            ["a", "b"]
        );
    }

    #[test]
    fn deepest_matching_child_wins_over_its_parent() {
        let t = tree(CONFIG);
        assert_eq!(
            t.receivers(&labels(&[("team", "x"), ("sev", "crit")])),
            ["a", "c"]
        );
    }

    #[test]
    fn first_matching_sibling_without_continue_stops_the_search() {
        let t = tree("route: {receiver: r, routes: [{receiver: a, matchers: [x=1]}, {receiver: a, matchers: [x=1]}]}\nreceivers: [{name: r}, {name: a}]\n");
        assert_eq!(t.receivers(&labels(&[("x", "1")])), ["a"]);
    }

    #[test]
    fn children_inherit_unset_options() {
        let t = tree(CONFIG);
        let c = t.matching(&labels(&[("team", "x"), ("sev", "crit")]))[1];
        assert_eq!(c.opts.receiver, "c");
        assert_eq!(c.opts.group_wait, Duration::from_secs(10));
        assert_eq!(c.opts.repeat_interval, Duration::from_secs(3600));
        assert_eq!(c.opts.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(c.opts.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(c.key, "{}/{team=\"x\"}/{sev=\"crit\"}");
    }

    #[test]
    fn wildcard_group_by_groups_by_every_label() {
        let t = tree(CONFIG);
        let a = t.matching(&labels(&[("team", "x")]))[0];
        let l = labels(&[("team", "x"), ("alertname", "Down")]);
        assert_eq!(a.opts.group_labels(&l), l);
        let root = t.root();
        assert_eq!(root.opts.group_labels(&l), labels(&[("alertname", "Down")]));
    }
}
