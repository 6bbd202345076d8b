// Folder rules of src/, checked by `npm run lint` (shared/ARCHITECTURE.md, "Dependency direction").
// Each floor may import the floors below it; within a floor only the pairs listed in SIDEWAYS.
// Unit specs are left out of the direction rules: a spec may build what it tests from any floor.

/** Lowest floor first. The files directly under src/ (main, bootstrap, app module) are the roof. */
const FLOORS = [
  ['config', 'common', 'observability', 'policy'],
  ['database', 'queue', 'auth', 'providers', 'replay'],
  ['voice'],
  ['slots', 'reclaim', 'webhooks'],
  ['scheduler'],
  ['ops', 'api-docs'],
];

/** Imports allowed between folders of one floor (one way only, so no folder cycle can form). */
const SIDEWAYS = {
  common: ['config'],
  observability: ['config', 'common'],
  queue: ['common'],
  auth: ['common', 'database'],
  providers: ['database'],
  replay: ['providers'],
  reclaim: ['slots'],
  webhooks: ['slots'],
  slots: [],
  ops: ['api-docs'],
};

const floorOf = new Map(FLOORS.flatMap((floor, level) => floor.map((name) => [name, level])));

const directionRules = [...floorOf.keys()].map((folder) => {
  const allowed = [
    folder,
    ...[...floorOf].filter(([, level]) => level < floorOf.get(folder)).map(([name]) => name),
    ...(SIDEWAYS[folder] ?? []),
  ];
  return {
    name: `direction-${folder}`,
    comment: `src/${folder} may import only ${allowed.filter((f) => f !== folder).join(', ') || 'nothing of src'}`,
    severity: 'error',
    from: { path: `^src/${folder}/`, pathNot: '\\.spec\\.ts$' },
    to: { path: '^src/', pathNot: `^src/(${allowed.join('|')})/` },
  };
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...directionRules,
    {
      name: 'unknown-folder',
      comment: 'every folder of src/ has a floor in .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/[^/]+/', pathNot: `^src/(${[...floorOf.keys()].join('|')})/` },
    },
    {
      name: 'no-circular',
      comment: 'modules that import each other in a cycle load half-initialised',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-framework-internals',
      comment:
        "import packages by their public entry points: a deep path into a package's files, or a " +
        "package's own nested dependency, breaks silently on the next upgrade",
      severity: 'error',
      from: { path: '^(src|test|bench)/' },
      to: {
        dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg'],
        path: ['node_modules/[^@/][^/]*/node_modules/', 'node_modules/@[^/]+/[^/]+/node_modules/'],
      },
    },
    {
      name: 'no-deep-framework-import',
      comment: 'Nest, Fastify and Bull are used through their package entry points only',
      severity: 'error',
      from: { path: '^(src|test|bench)/' },
      to: {
        path: '^node_modules/(@nestjs/[^/]+|@fastify/[^/]+|fastify|bull|express)/',
        pathNot:
          '^node_modules/(@nestjs/[^/]+|@fastify/[^/]+|fastify|bull|express)/((dist|lib)/)?(index|main|fastify|express|bull)\\.(js|cjs|mjs|d\\.ts)$',
      },
    },
    {
      name: 'no-unresolvable',
      comment: 'an import that resolves to nothing',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
