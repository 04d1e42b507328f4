#!/usr/bin/env node
// The `apx` bin (npx apx). A committed file, so npm can link it before the TypeScript
// build has produced dist/; the program itself is dist/main.js.
import '../dist/main.js';
