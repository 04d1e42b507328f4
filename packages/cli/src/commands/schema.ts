import { type CommandSpec, flagBool } from '../command.js';

export const schemaCommand: CommandSpec = {
  name: 'schema',
  summary: 'Print the JSON Schema (draft 2020-12) of apx/v1 policies (--tests: of apx test files), for editors and linters.',
  usage: '[--tests]',
  details: `The same schemas as schema/apx-v1.schema.json and schema/apx-test.schema.json in the
repository. Point an editor at them for completion and checks as you type: see "JSON Schema
and editor setup" in docs/policy-language.md. A schema checks the shape (field names, types,
enumerations, value patterns); apx compile and apx test also check what a schema cannot (CEL
conditions, CIDR host bits, route references, unique names, requests merged with defaults).`,
  flags: [{ name: 'tests', type: 'boolean', description: 'Print the schema of apx test files (*.test.yaml) instead.' }],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const { policyJsonSchemaText, testJsonSchemaText } = await import('@apx/policy');
    ctx.stdout.write(flagBool(args, 'tests') ? testJsonSchemaText() : policyJsonSchemaText());
    return 0;
  },
};
