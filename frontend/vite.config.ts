/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// The backend the dev server and `vite preview` forward to; the nginx image does the same in production.
// changeOrigin rewrites Host to the backend's, so xfwd passes the page's own host on as X-Forwarded-Host: the
// backend refuses writes whose Origin is neither its own host nor CORS_ALLOW_ORIGINS, and this is how it knows
// that the page's Origin (http://localhost:3000) is the site the browser is on.
const backend = process.env.BACKEND_URL ?? 'http://localhost:8000'
const proxy = Object.fromEntries(
  ['/api', '/ready', '/health'].map((path) => [path, { target: backend, changeOrigin: true, xfwd: true }]),
)
const port = Number(process.env.PORT ?? 3000)
// The production headers of nginx/default.conf.template, on `vite preview` too, so the e2e run would catch a page
// that breaks them (the dev server injects inline scripts for hot reload, so it goes without).
const securityHeaders = {
  'Content-Security-Policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
}

export default defineConfig({
  plugins: [react()],
  server: { port, strictPort: true, proxy },
  preview: { port, strictPort: true, proxy, headers: securityHeaders },
  build: { sourcemap: true, target: 'es2022' },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.test.{ts,tsx}'],
    setupFiles: ['tests/setup.ts'],
    restoreMocks: true,
  },
})
