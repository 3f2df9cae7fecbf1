//! [`Turn`]: one decision in the making, and the ways it answers (a text,
//! a step's question).

use crate::texts::{self, Texts};
use crate::ui::{self, templates, Fallback, View};
use crate::{money, Action, Context, Lang};

/// One decision in the making: the context, the language (which may change
/// during the turn) and the actions decided so far.
pub(crate) struct Turn<'c, 'a> {
    pub ctx: &'c Context<'a>,
    pub lang: Lang,
    pub customer: Option<String>,
    pub actions: Vec<Action>,
}

impl<'c, 'a> Turn<'c, 'a> {
    pub fn new(ctx: &'c Context<'a>, lang: Lang) -> Self {
        Turn {
            ctx,
            lang,
            customer: None,
            actions: Vec::new(),
        }
    }

    pub fn t(&self) -> &'static dyn Texts {
        texts::of(self.lang)
    }

    pub fn money(&self, amount: i64) -> String {
        money(amount, &self.ctx.restaurant.currency)
    }

    pub fn act(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub fn say(&mut self, text: String) {
        let reply = ui::text(&text, self.lang);
        self.actions.push(Action::Send(reply));
    }

    pub fn show(&mut self, view: &View, lead: &[String]) {
        // The quantity question asks for a number: its text version needs
        // no numbered options ("1. 1").
        let fallback = if view.template == templates::QUANTITY {
            Fallback::Hint(String::new())
        } else {
            Fallback::Numbered
        };
        let reply = ui::interactive(view, lead, self.lang, self.ctx.restaurant, fallback);
        self.actions.push(Action::Send(reply));
    }

    pub fn online_payment(&self) -> bool {
        self.ctx
            .restaurant
            .payment_link_base
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty())
    }
}
