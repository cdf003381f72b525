#!/usr/bin/env node
import "../dist/kiln.mjs";
