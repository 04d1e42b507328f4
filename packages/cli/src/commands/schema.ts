import type { CommandSpec } from '../command.js';

export const schemaCommand: CommandSpec = {
  name: 'schema',
  summary: 'Print the JSON Schema (draft 2020-12) of apx/v1 policies, for editors and CI linters.',
  usage: '',
  details: `The same schema as schema/apx-v1.schema.json in the repository. Point an editor at it
for completion and checks as you type: see "Editor setup" in docs/policy-language.md. The
schema checks the shape (field names, types, enumerations, value patterns); apx compile also
checks what a schema cannot (CEL conditions, CIDR host bits, route references, unique names).`,
  flags: [],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx) {
    const { policyJsonSchemaText } = await import('@apx/policy');
    ctx.stdout.write(policyJsonSchemaText());
    return 0;
  },
};
