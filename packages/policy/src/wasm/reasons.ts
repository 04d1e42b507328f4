/** Reasons and statuses of the decisions the language itself makes (docs/policy-language.md). */
export const BUILTIN_REASONS = {
  bodyTooLarge: { text: 'request body too large', status: 413 },
  ipDenied: { text: 'client address denied', status: 403 },
  ipNotAllowed: { text: 'client address not allowed', status: 403 },
  noRoute: { text: 'no matching route', status: 404 },
  badApiKey: { text: 'invalid API key', status: 401 },
  badToken: { text: 'invalid token', status: 401 },
  insufficientScope: { text: 'insufficient scope', status: 403 },
  authRequired: { text: 'authentication required', status: 401 },
  conditionError: { text: 'rule condition could not be evaluated', status: 403 },
  defaultAllow: { text: 'allowed by default', status: 200 },
  defaultDeny: { text: 'denied by default', status: 403 },
} as const;
export type BuiltinReason = keyof typeof BUILTIN_REASONS;
