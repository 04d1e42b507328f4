import type { PolicyDecision } from './decision.js';

/**
 * Cache: the JSON text of frozen objects a decision is made of — whole static decisions (see
 * DecisionCache), identities, the policy's header-mutation tables — by object identity.
 * Bound: a WeakMap, so an entry lives only as long as its object, and the objects are
 * themselves bounded (the host's decision cache, one identity per API key and the last JWT
 * caller, one header table per policy). Why it is safe in the trusted core: only frozen
 * objects are entered, so the text can never disagree with the object it was made from.
 */
const frozenText = new WeakMap<object, string>();
/** The same for whole decisions: their text without the closing brace (members go before it). */
const decisionBodies = new WeakMap<PolicyDecision, string>();

function cachedJson(value: object): string {
  let text = frozenText.get(value);
  if (text === undefined) {
    text = JSON.stringify(value);
    if (Object.isFrozen(value)) frozenText.set(value, text);
  }
  return text;
}

const str = (v: string | null) => (v === null ? 'null' : JSON.stringify(v));

/**
 * The one serializer of a decision, as served by the worker (`POST /v1/decide`, dry runs):
 * the decision's fields in order, then `"allow"`. Built by hand: JSON.stringify over the
 * shared, frozen table objects costs microseconds per call, so those parts (and whole static
 * decisions) are serialized once and reused. `members`, when given, is appended inside the
 * object (`,"policy":"...","digest":"..."`), so a caller adds its fields without slicing.
 */
export function decisionJson(d: PolicyDecision, members = ''): string {
  let body = decisionBodies.get(d);
  if (body === undefined) {
    body =
      `{"effect":"${d.effect}","status":${d.status},"reason":${str(d.reason)},"route":${str(d.route)},"rule":${str(d.rule)},` +
      `"identity":${cachedJson(d.identity)},"headers":${cachedJson(d.headers)},` +
      `"rateLimits":${d.rateLimits.length === 0 ? '[]' : JSON.stringify(d.rateLimits)},"allow":${d.effect === 'allow'}`;
    if (Object.isFrozen(d)) decisionBodies.set(d, body);
  }
  return `${body}${members}}`;
}
