// Root layout of the BitVault web app.

export const metadata = {
  title: 'BitVault',
  description: 'BitVault file storage and sync',
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
