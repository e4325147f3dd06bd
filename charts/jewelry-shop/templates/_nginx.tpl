{{/*
nginx's server block: proxy to the web Service and answer its own health check.
The upstream is the Service's one address (kube-proxy spreads connections over
the web pods), so nginx has one peer and could not retry a failed request on
another pod: proxy_next_upstream is off rather than a retry that never happens.
kube-proxy picks a pod when a connection opens, so a kept-alive connection
stays on its pod for good: pods the HPA adds would get no request until nginx
opened new connections (seen on real nodes: new web pods idle at 0.2m CPU while
the first three served everything). keepalive_time closes each upstream
connection after its request once it is 10 s old, so load spreads to new pods
within seconds, and no request fails for it.
*/}}
{{- define "jewelry-shop.nginx.conf" -}}
upstream web {
    server {{ include "jewelry-shop.fullname" . }}-web.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ .Values.web.port }};
    keepalive 32;
    keepalive_time 10s;
}

server {
    listen {{ .Values.nginx.port }};
    server_tokens off;

    location = /nginx-healthz {
        access_log off;
        default_type text/plain;
        return 200 "ok\n";
    }

    location / {
        proxy_pass http://web;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout {{ .Values.nginx.proxyConnectTimeout }};
        proxy_read_timeout {{ .Values.nginx.proxyReadTimeout }};
        proxy_next_upstream off;
    }
}
{{- end }}
