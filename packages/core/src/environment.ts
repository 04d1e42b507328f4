/** The environments a worker runs in and an artifact is signed and approved for. */
export const ENVIRONMENTS = ['dev', 'staging', 'production'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];
