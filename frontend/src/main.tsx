import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { getDocument } from './api/client'
import { uploadFile } from './api/upload'
import { App } from './App'
import { AuthGate } from './auth/AuthGate'
import { UploadQueue } from './lib/uploads'
import './styles.css'
import './chat.css'

const uploads = new UploadQueue({ upload: uploadFile, get: (id) => getDocument(id) })

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <AuthGate>
      <App uploads={uploads} />
    </AuthGate>
  </StrictMode>,
)
