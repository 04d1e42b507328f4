import { ENVIRONMENTS, type Environment } from '@apx/core';
import { flagString, type ParsedArgs, UsageError } from './command.js';

function checked(env: string): Environment {
  if (!(ENVIRONMENTS as readonly string[]).includes(env))
    throw new UsageError(`--env ${env} is not one of ${ENVIRONMENTS.join(', ')}`);
  return env as Environment;
}

/** `--env`, checked; `dev` when absent, so an unlabelled artifact can never run in production. */
export function environmentFlag(args: ParsedArgs): Environment {
  return checked(flagString(args, 'env') ?? 'dev');
}

/** `--env` as a comma-separated list (a key's environments); every environment when absent. */
export function environmentsFlag(args: ParsedArgs): Environment[] {
  const text = flagString(args, 'env');
  return text === undefined ? [...ENVIRONMENTS] : text.split(',').map((e) => checked(e.trim()));
}
