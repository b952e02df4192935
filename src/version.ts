import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const DFWE_VERSION = (require('../../package.json') as { version: string }).version;
