// Build step: parse the .proto sources once and write the resolved Root as JSON beside the
// compiled loader, so processes on the hot path (berthd, berth-shim) start without the parser.
import * as fs from 'node:fs';
import { BUNDLE_PATH, parseProtoFiles } from './index';

const root = parseProtoFiles();
fs.writeFileSync(BUNDLE_PATH, JSON.stringify(root.toJSON({ keepComments: false })));
