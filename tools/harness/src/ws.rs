//! A dashboard WebSocket client for tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};

pub struct Dashboard {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Dashboard {
    /// Connects with `Authorization: Bearer <token>`.
    pub async fn connect(url: &str, token: &str) -> Result<Dashboard, String> {
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().map_err(|_| "bad token")?,
        );
        let (socket, _) = connect_async(request).await.map_err(|e| e.to_string())?;
        Ok(Dashboard { socket })
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.socket
            .send(Message::Text(value.to_string()))
            .await
            .expect("send on websocket");
    }

    /// Subscribes to the three channels of a restaurant.
    pub async fn subscribe(&mut self, restaurant_id: uuid::Uuid, since: Option<u64>) {
        let channels: Vec<String> = ["messages", "orders", "conversations"]
            .iter()
            .map(|c| format!("ws:restaurant:{restaurant_id}:{c}"))
            .collect();
        let mut msg = serde_json::json!({"action": "subscribe", "channels": channels});
        if let Some(since) = since {
            msg["since"] = since.into();
        }
        self.send_json(msg).await;
    }

    /// The next JSON frame, or None after `timeout`.
    pub async fn next_json(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = tokio::time::timeout(remaining, self.socket.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Frames until one has `type == event_type`; returns it (None on timeout).
    pub async fn wait_for(
        &mut self,
        event_type: &str,
        timeout: Duration,
    ) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next_json(remaining).await?;
            if frame["type"] == event_type {
                return Some(frame);
            }
        }
    }

    /// Every frame that arrives within `window`.
    pub async fn collect_for(&mut self, window: Duration) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut frames = vec![];
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return frames;
            }
            match self.next_json(remaining).await {
                Some(f) => frames.push(f),
                None => return frames,
            }
        }
    }
}
