// Next.js configuration for the BitVault web image.
//
// - output 'standalone': the image ships .next/standalone (server.js plus the traced node_modules),
//   no npm and no full node_modules at runtime.
// - generateBuildId is deterministic so that the same inputs give the same build output
//   (reproducible images); the release tool may pass BITVAULT_BUILD_ID.
// - images.unoptimized: no image optimizer at runtime, so neither `sharp` (a native addon) nor a
//   writable .next/cache is needed; the image runs on a read-only root filesystem.
// - Every page is dynamic (force-dynamic) and nothing uses ISR, so nothing is written at runtime.

/** @type {import('next').NextConfig} */
const nextConfig = {
  output: 'standalone',
  poweredByHeader: false,
  reactStrictMode: true,
  images: { unoptimized: true },
  generateBuildId: async () => process.env.BITVAULT_BUILD_ID || 'bitvault-web',
  // Belt and braces: never trace the native image libraries into the standalone output. The
  // build runs on the build platform while the image runs on the target platform, so a traced
  // native addon would be for the wrong architecture anyway.
  outputFileTracingExcludes: {
    '*': ['node_modules/sharp/**', 'node_modules/@img/**', 'node_modules/@next/swc-*/**'],
  },
};

export default nextConfig;
