import { flagString, type ParsedArgs, UsageError } from './command.js';

/** The environments a signature can bind an artifact to (and a worker can run in). */
export const ENVIRONMENTS = ['dev', 'staging', 'production'] as const;

/** `--env`, checked; `dev` when absent, so an unlabelled artifact can never run in production. */
export function environmentFlag(args: ParsedArgs): string {
  const env = flagString(args, 'env') ?? 'dev';
  if (!(ENVIRONMENTS as readonly string[]).includes(env))
    throw new UsageError(`--env ${env} is not one of ${ENVIRONMENTS.join(', ')}`);
  return env;
}
