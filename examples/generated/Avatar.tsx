// A component as a model might write it: it compiles, and it breaks the
// team's standards. `make demo` runs `aegis-run enforce` on it.
import { useState } from 'react';

var size = 48;

export function Avatar(props: any) {
  let url = props.user!.avatarUrl;
  const [open, setOpen] = useState(false);
  return (
    <div onClick={() => setOpen(!open)} style={{ color: '#ff0000', padding: '12px' }}>
      <img src={url} width={size} />
      <a>profile</a>
    </div>
  );
}
