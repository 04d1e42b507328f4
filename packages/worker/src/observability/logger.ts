import { type DestinationStream, type Logger, pino } from 'pino';

/** pino's levels in Google Cloud Logging's severity names (DESIGN.md §5). */
const SEVERITY: Record<string, string> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

export type WorkerLogger = Logger;

/**
 * One JSON object per line: `severity`, `message`, `time` (RFC 3339) and context fields
 * (`policy_ref`, `digest`, `key_id`, `security_event`). Anything that could carry a secret
 * is redacted by field name, so a mistaken log call cannot leak a password or key.
 */
export function createLogger(destination?: DestinationStream, level = 'info'): WorkerLogger {
  return pino(
    {
      level,
      messageKey: 'message',
      base: { service: 'apx-worker' },
      timestamp: () => `,"time":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ severity: SEVERITY[label] ?? label.toUpperCase() }) },
      redact: {
        paths: [
          'password',
          'passphrase',
          'privateKey',
          'private_key',
          'token',
          'authorization',
          'secret',
          '*.password',
          '*.token',
          '*.authorization',
        ],
        censor: '[REDACTED]',
      },
    },
    destination,
  );
}

/** The log line of a policy that failed closed (trap, malformed record, deadline...): its decision was a deny. */
export function logPolicyFault(
  log: WorkerLogger,
  fault: { policy: string; digest: string; kind: string; message: string },
): void {
  log.error(
    { policy_ref: fault.policy, digest: fault.digest, fault: fault.kind },
    `policy failed closed (deny): ${fault.message}`,
  );
}
