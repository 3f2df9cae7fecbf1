//! The greeting (with the delivery-or-pickup question) and the choice of
//! language.

use crate::ids::ChoiceId;
use crate::menu;
use crate::opening;
use crate::texts;
use crate::ui::{self, templates, Fallback, Opt, View};
use crate::{Action, Dialogue, Lang, Step};

use super::{reask, show_step, Turn};

/// The greeting and the delivery-or-pickup question. `keep_cart`: a
/// greeting keeps what the customer already chose; "start over" empties it.
pub(crate) fn greet(d: &mut Dialogue, turn: &mut Turn, keep_cart: bool, mut lead: Vec<String>) {
    if !keep_cart {
        d.cart.clear();
    }
    d.reset_choices();
    d.set_step(Step::Fulfilment);
    let restaurant = turn.ctx.restaurant;
    let name = menu::pick(turn.lang, &restaurant.name_en, &restaurant.name_ar);
    lead.push(turn.t().greeting(name, turn.customer.as_deref()));
    if !d.cart.is_empty() {
        lead.push(turn.t().cart_kept(menu::pieces(&d.cart)));
    }
    if !turn.ctx.branches.is_empty() && opening::open_now(turn.ctx, None).is_empty() {
        return opening::closed(d, turn, lead, None);
    }
    show_step(d, turn, lead);
}

pub(super) fn switch_language(d: &mut Dialogue, lang: Lang, turn: &mut Turn) {
    d.language = Some(lang);
    turn.lang = lang;
    if matches!(d.step, Step::Start | Step::Unknown) {
        greet(d, turn, true, vec![]);
    } else {
        let lead = vec![turn.t().language_switched()];
        reask(d, turn, lead);
    }
}

pub(super) fn language_menu(turn: &mut Turn) {
    let t = turn.t();
    let view = View {
        template: templates::LANGUAGE,
        body: t.ask_language(),
        options: vec![
            Opt::new(ChoiceId::Language(Lang::En), texts::language_name(Lang::En)),
            Opt::new(ChoiceId::Language(Lang::Ar), texts::language_name(Lang::Ar)),
        ],
    };
    // Not a step: a typed number stays the current step's answer, so the
    // text version asks for a word, not a number.
    let reply = ui::interactive(
        &view,
        &[],
        turn.lang,
        turn.ctx.restaurant,
        Fallback::Hint(t.language_fallback()),
    );
    turn.act(Action::Send(reply));
}
