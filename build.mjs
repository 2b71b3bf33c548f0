// Bundle js/index.ts (and the js/widget.css it imports) into headpursuit_widget/static/.
// node build.mjs            production (minified)
// node build.mjs --dev      sourcemaps, no minify; add --watch to rebuild on change
import * as esbuild from "esbuild";

const dev = process.argv.includes("--dev");
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: { widget: "js/index.ts" },
  outdir: "headpursuit_widget/static",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
